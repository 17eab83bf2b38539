//! Integration tests: the real `healthprobe` executable against real loopback servers and
//! real (test-only) guest components. One test binary; one module per topic.

mod support;

// The real servers the service probes are tested against (Redis, PostgreSQL, MariaDB,
// memcached), each started by its test.
mod servers;

// Running probes: results, bounds, and bad input.
mod bad_input;
mod checks;
mod containment;
mod dns_leak;
mod http;
mod network_policy;
mod no_processes;
mod tcp;
mod wasi_http;
mod zombies;

// Writing a probe outside this repository: the packaged SDK and `healthprobe new`.
mod authoring;

// The sandbox for third-party probes, and what `list` and `inspect` tell about them.
mod inspect;
mod integrity;
mod languages;
mod sandbox;
mod secrets;
mod serve;

// Probes from OCI registries: pull, push, oci:// references.
mod oci;

// serve's /probe beside blackbox_exporter, under a real Prometheus.
mod blackbox;

// Loading code (precompiled components, the compile cache, the runtime-only build) and
// the library's own resource use.
mod hygiene;
mod precompiled;

// The bundled service probes, each against its real server.
mod amqp;
mod dns;
mod file;
mod grpc;
mod ldap;
mod memcached;
mod mqtt;
mod mysql;
mod nats;
mod postgres;
mod redis;
mod smtp;
mod tcp_expect;
mod tls;
mod zookeeper;
