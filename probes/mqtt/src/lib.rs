//! The bundled `mqtt` probe: CONNECT, and CONNACK must accept it (MQTT 3.1.1 or 5, with
//! a user name and password when given); with `topic`, a round trip on it: SUBSCRIBE,
//! PUBLISH a random payload, and receive it back. The framing is written here: MQTT's
//! packets are a byte of type, a variable-length size and a few length-prefixed strings,
//! and the Rust MQTT clients are built on tokio or threads, which a probe has neither of.

mod packet;

use std::time::Instant;

use healthprobe_sdk::tcp::{self, FrameError, Framed, TcpConn, Tls};
use healthprobe_sdk::{
    Budget, CheckError, CheckResult, ParamSpec, Params, Probe, ProbeInfo, random,
};

use packet::{Packet, Version};

struct Mqtt;

impl Probe for Mqtt {
    fn describe() -> ProbeInfo {
        ProbeInfo::new(
            "mqtt",
            env!("CARGO_PKG_VERSION"),
            "Connects to an MQTT broker (CONNECT, CONNACK; MQTT 3.1.1 or 5), logging in when a \
             user name is given; with topic, also subscribes to it, publishes a random payload \
             and waits to receive it. A refusal is reported in the broker's own words.",
        )
        .param(ParamSpec::required(
            "address",
            "The broker as host:port, for example 127.0.0.1:1883 (8883 with tls=true).",
        ))
        .param(ParamSpec::optional(
            "username",
            "User name sent in CONNECT, for example username=monitor.",
        ))
        .param(ParamSpec::optional(
            "password",
            "Password sent in CONNECT; needs username. Give it by reference, for example \
             password@file=/run/secrets/mqtt.",
        ))
        .param(ParamSpec::optional(
            "client-id",
            "Client identifier; the default is healthprobe- and a random suffix, so two \
                 probes never take each other's session.",
        ))
        .param(
            ParamSpec::optional("version", "MQTT protocol version: 3.1.1 or 5.").default("3.1.1"),
        )
        .param(ParamSpec::optional(
            "topic",
            "Also check a publish-and-receive round trip on this topic, for example \
             topic=health/probe; the broker must let the user subscribe and publish to it.",
        ))
        .params(Tls::params(false))
    }

    fn check(params: &Params, budget: Budget) -> Result<CheckResult, CheckError> {
        let config = Config::from_params(params)?;
        let start = Instant::now();
        let outcome = run(&config, &budget);
        let elapsed_ms = start.elapsed().as_millis();
        let result = match outcome {
            Ok(Done {
                session_present,
                round_trip_ms,
            }) => {
                let mut message = format!(
                    "CONNACK from {} (MQTT {}) in {elapsed_ms} ms",
                    config.address,
                    config.version.name()
                );
                if let (Some(topic), Some(ms)) = (&config.topic, round_trip_ms) {
                    message.push_str(&format!(", round trip on {topic} in {ms} ms"));
                }
                let mut result =
                    CheckResult::healthy(message).detail("session-present", session_present);
                if let Some(ms) = round_trip_ms {
                    result = result.detail("round-trip-ms", ms);
                }
                result
            }
            Err(Fail::Refused { code, words }) => CheckResult::unhealthy(format!(
                "{} refused the connection: {words} (CONNACK code {code})",
                config.address
            ))
            .detail("error", "refused")
            .detail("code", code),
            Err(Fail::SubscribeRefused(code)) => CheckResult::unhealthy(format!(
                "{} refused the subscription to {} (SUBACK code {code:#04x}); grant the user \
                 that topic",
                config.address,
                config.topic.as_deref().unwrap_or_default()
            ))
            .detail("error", "subscribe-refused")
            .detail("code", code),
            Err(Fail::Lost(e)) => CheckResult::unhealthy(format!(
                "{}: {e}: the message published on {} did not come back; the broker may deny \
                 the user publishing or subscribing to it",
                config.address,
                config.topic.as_deref().unwrap_or_default()
            ))
            .detail("error", "timeout"),
            Err(Fail::Frame(e)) => e.verdict(&config.address),
            Err(Fail::Connect(e)) => e.into_verdict()?,
        };
        Ok(result
            .detail("address", &config.address)
            .detail("version", config.version.name())
            .detail("elapsed-ms", elapsed_ms))
    }
}

healthprobe_sdk::export_probe!(Mqtt);

/// The parameters, checked.
#[derive(Debug)]
struct Config {
    address: String,
    username: Option<String>,
    password: Option<String>,
    client_id: String,
    version: Version,
    topic: Option<String>,
    tls: Tls,
}

impl Config {
    fn from_params(params: &Params) -> Result<Config, CheckError> {
        let address = params.required_str("address")?.trim().to_string();
        tcp::parse_address(&address)
            .map_err(|reason| CheckError::invalid_param("address", reason))?;
        let username = params.str("username").map(str::to_string);
        let password = params.str("password").map(str::to_string);
        if password.is_some() && username.is_none() {
            return Err(CheckError::invalid_config(
                "password= needs username= (MQTT 3.1.1 sends a password only with a user name)",
            ));
        }
        let client_id = match params.str("client-id") {
            Some(id) if id.is_empty() || id.len() > 256 => {
                return Err(CheckError::invalid_param(
                    "client-id",
                    "expected 1 to 256 characters, for example client-id=monitor-1",
                ));
            }
            Some(id) => id.to_string(),
            None => format!(
                "healthprobe-{}",
                random::nonce(9).replace(['+', '/', '='], "x")
            ),
        };
        let version = params.required_parse("version", Version::parse)?;
        let topic = params.str("topic").map(str::to_string);
        if let Some(topic) = &topic
            && (topic.is_empty() || topic.contains(['+', '#']) || topic.len() > 1024)
        {
            return Err(CheckError::invalid_param(
                "topic",
                "expected a topic name without wildcards (+, #), for example topic=health/probe",
            ));
        }
        let tls = Tls::from_params(params, &address, false)?;
        Ok(Config {
            address,
            username,
            password,
            client_id,
            version,
            topic,
            tls,
        })
    }
}

/// A healthy check.
struct Done {
    session_present: bool,
    round_trip_ms: Option<u128>,
}

/// Why the check failed.
enum Fail {
    Connect(tcp::TcpError),
    Frame(FrameError),
    /// CONNACK with a refusal: its code and the specification's words for it.
    Refused {
        code: u8,
        words: &'static str,
    },
    SubscribeRefused(u8),
    /// The round trip's message never came back.
    Lost(FrameError),
}

impl From<FrameError> for Fail {
    fn from(e: FrameError) -> Self {
        Fail::Frame(e)
    }
}

fn run(config: &Config, budget: &Budget) -> Result<Done, Fail> {
    let conn: TcpConn =
        tcp::connect_with(&config.address, &config.tls, budget).map_err(Fail::Connect)?;
    // A broker's answers here are a few bytes; more is another service talking.
    let mut link = Framed::new(conn).max(64 * 1024);
    let v = config.version;
    link.send(
        &packet::connect(
            v,
            &config.client_id,
            config.username.as_deref(),
            config.password.as_deref(),
        ),
        "CONNACK",
    )?;
    let connack = packet::read(&mut link, v, "CONNACK", true)?;
    let Packet::ConnAck {
        session_present,
        code,
    } = connack
    else {
        return Err(Fail::Frame(FrameError::Malformed {
            step: "CONNECT",
            reason: format!("expected CONNACK, got {}", connack.name()),
        }));
    };
    if code != 0 {
        return Err(Fail::Refused {
            code,
            words: packet::connack_words(v, code),
        });
    }
    let mut round_trip_ms = None;
    if let Some(topic) = &config.topic {
        let start = Instant::now();
        link.send(&packet::subscribe(v, 1, topic), "SUBACK")?;
        loop {
            match packet::read(&mut link, v, "SUBACK", false)? {
                Packet::SubAck { id: 1, code } if code >= 0x80 => {
                    return Err(Fail::SubscribeRefused(code));
                }
                Packet::SubAck { id: 1, .. } => break,
                // A retained message on the topic may come first.
                _ => {}
            }
        }
        let payload = random::nonce(18);
        link.send(
            &packet::publish(v, topic, payload.as_bytes()),
            "the message published",
        )?;
        // A broker that denies the user this topic often says nothing: it grants the
        // subscription and drops the message.
        let lost = |e: FrameError| {
            if e.is_timeout() {
                Fail::Lost(e)
            } else {
                Fail::Frame(e)
            }
        };
        loop {
            if let Packet::Publish {
                topic: t,
                payload: p,
            } = packet::read(&mut link, v, "the message published", false).map_err(lost)?
                && t == *topic
                && p == payload.as_bytes()
            {
                break;
            }
        }
        round_trip_ms = Some(start.elapsed().as_millis());
    }
    // A polite goodbye; the verdict does not wait for it.
    let _ = link.link_mut().write_all(&packet::disconnect());
    Ok(Done {
        session_present,
        round_trip_ms,
    })
}
