//! The `--policy` file: grants, caps, a pinned digest and parameters in TOML, one key per
//! command-line option. A checks file's `[checks.NAME]`, `[modules.NAME]` and `[defaults]`
//! tables take the same keys.
//!
//! The keys are not declared here: they are the fields of the flag groups in
//! [`crate::flags`], which serde reads from a table with the flags' own parsers. Each
//! group is read from the same table in turn (rather than through serde's `flatten`,
//! which buffers the table and loses both the key and the line of a bad value), and a key
//! that no group takes is refused, so a typo cannot silently drop a grant or a cap.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::flags::{CodeLimitArgs, GrantArgs, LimitArgs, de};
use crate::report::Failure;
use crate::text;

/// A `--policy` file, or the policy keys of a checks file's table.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Policy {
    /// Pinned SHA-256 of the probe, lower case.
    pub sha256: Option<String>,
    /// Caps.
    pub limits: LimitArgs,
    /// Grants.
    pub grants: GrantArgs,
    /// Probe parameters; a list gives a repeatable parameter several values.
    pub params: Option<BTreeMap<String, toml::Value>>,
}

/// The keys of a policy that are not flag groups.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Pin {
    #[serde(deserialize_with = "de::sha256")]
    sha256: Option<String>,
    params: Option<BTreeMap<String, toml::Value>>,
}

impl Policy {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, Failure> {
        let bad = |why: String| {
            Failure::BadInput(format!(
                "policy file {}: {why}; see the README for the keys a policy file takes",
                path.display()
            ))
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::BadInput(format!(
                "policy file {}: cannot read it: {}",
                path.display(),
                text::io_error(&e)
            ))
        })?;
        let table = Table::parse(&text).map_err(bad)?;
        table.refuse_unknown(&Self::keys()).map_err(bad)?;
        Self::read(&table).map_err(bad)
    }

    /// Every key a policy takes.
    pub fn keys() -> Vec<&'static str> {
        [
            fields::<Pin>(),
            fields::<LimitArgs>(),
            fields::<CodeLimitArgs>(),
            fields::<GrantArgs>(),
        ]
        .concat()
    }

    /// The policy keys of `table`, ignoring any other.
    pub(crate) fn read(table: &Table) -> Result<Self, String> {
        let pin: Pin = table.read()?;
        let mut limits: LimitArgs = table.read()?;
        limits.code = table.read()?;
        Ok(Self {
            sha256: pin.sha256,
            limits,
            grants: table.read()?,
            params: pin.params,
        })
    }

    /// This policy, with what it leaves out taken from `under`; of the parameters, each
    /// key it gives replaces `under`'s values for that key.
    pub fn or(self, under: Policy) -> Policy {
        let params = match (self.params, under.params) {
            (Some(mine), Some(mut base)) => {
                base.extend(mine);
                Some(base)
            }
            (mine, base) => mine.or(base),
        };
        Policy {
            sha256: self.sha256.or(under.sha256),
            limits: self.limits.or(under.limits),
            grants: self.grants.or(under.grants),
            params,
        }
    }
}

/// One table of a TOML file, with where it is, so that an error names the key and its
/// line.
#[derive(Clone)]
pub(crate) struct Table<'a> {
    text: &'a str,
    table: Spanned<DeTable<'a>>,
}

impl<'a> Table<'a> {
    /// The whole file as a table; a syntax error says where it is.
    pub fn parse(text: &'a str) -> Result<Self, String> {
        let table = DeTable::parse(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            with_line(e.message().to_string(), line)
        })?;
        Ok(Self { text, table })
    }

    /// Refuses a key that is not one of `known`, at its line.
    pub fn refuse_unknown(&self, known: &[&str]) -> Result<(), String> {
        for (key, _) in self.table.get_ref() {
            if !known.contains(&key.get_ref().as_ref()) {
                let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                return Err(format!(
                    "unknown key `{}` (line {}); expected one of {}",
                    key.get_ref(),
                    line_of(self.text, key.span().start),
                    expected.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The table under `key`, if there is one.
    pub fn table(&self, key: &str) -> Result<Option<Table<'a>>, String> {
        let Some((k, value)) = self.table.get_ref().get_key_value(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Table(t) => Ok(Some(Table {
                text: self.text,
                table: Spanned::new(value.span(), t.clone()),
            })),
            other => Err(with_line(
                format!("{key}: expected a table, got {}", kind(other)),
                Some(line_of(self.text, k.span().start)),
            )),
        }
    }

    /// The tables under `key` (`[checks.NAME]`), in name order.
    pub fn tables(&self, key: &str) -> Result<Vec<(String, Table<'a>)>, String> {
        let Some(outer) = self.table(key)? else {
            return Ok(Vec::new());
        };
        let mut tables = Vec::new();
        for (name, _) in outer.table.get_ref() {
            let name = name.get_ref().to_string();
            let table = outer
                .table(&name)
                .map_err(|why| format!("{key}.{why}"))?
                .expect("the key was just listed");
            tables.push((name, table));
        }
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tables)
    }

    /// The keys of this table that `T` takes, through serde; other keys are ignored. An
    /// error names the key whose value is wrong.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, String> {
        T::deserialize(toml::Deserializer::from(self.table.clone())).map_err(|e| {
            let at = e.span().filter(|s| !s.is_empty() || s.start > 0);
            let key = at.as_ref().and_then(|at| {
                self.table.get_ref().iter().find_map(|(k, v)| {
                    let value = v.span();
                    (contains(&value, at) || contains(&k.span(), at)).then(|| k.get_ref())
                })
            });
            let why = match key {
                Some(k) => format!("{k}: {}", e.message()),
                None => e.message().to_string(),
            };
            with_line(why, at.map(|s| line_of(self.text, s.start)))
        })
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end.max(outer.start + 1)
}

fn with_line(why: String, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{why} (line {line})"),
        None => why,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text[..offset.min(text.len())].matches('\n').count()
}

fn kind(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// The keys serde reads into the struct `T`: a deserializer that only records the fields
/// it is asked for.
pub(crate) fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::value::Error;
    use serde::de::{Deserializer, Visitor};

    struct Fields<'f>(&'f mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(serde::de::Error::custom("only a struct's fields are read"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("only the fields are wanted"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Args;

    /// The flags and the file's keys are the same fields; this holds their names equal.
    #[test]
    fn every_flag_is_a_key_of_the_same_name() {
        let longs = |cmd: clap::Command| -> Vec<String> {
            cmd.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect()
        };
        let mut flags = longs(LimitArgs::augment_args(clap::Command::default()));
        flags.extend(longs(GrantArgs::augment_args(clap::Command::default())));
        flags.push("sha256".into());
        flags.push("params".into());
        flags.sort();
        let mut keys: Vec<String> = Policy::keys().iter().map(|k| k.to_string()).collect();
        keys.sort();
        assert_eq!(flags, keys);
    }

    fn read(text: &str) -> Result<Policy, String> {
        let table = Table::parse(text)?;
        table.refuse_unknown(&Policy::keys())?;
        Policy::read(&table)
    }

    #[test]
    fn values_are_parsed_as_the_flags_are_and_errors_name_key_and_line() {
        let p = read(
            "timeout = \"1500ms\"\nmax-code-size = \"1MiB\"\nallow-net = []\n\
             allow-udp = [\"127.0.0.1:53\"]\nallow-insecure-tls = false\n\
             sha256 = \"AB\"\n"
                .replace("\"AB\"", &format!("\"{}\"", "AB".repeat(32)))
                .as_str(),
        )
        .unwrap();
        assert_eq!(
            p.limits.timeout,
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(p.limits.code.max_code_size, Some(1 << 20));
        assert_eq!(p.grants.allow_net, Some(vec![]));
        assert_eq!(p.grants.allow_udp.unwrap().len(), 1);
        assert_eq!(p.grants.allow_insecure_tls, Some(false));
        assert_eq!(p.sha256, Some("ab".repeat(32)));

        let e = read("fuel = 1\n\ntimeout = \"2x\"\n").unwrap_err();
        assert!(e.starts_with("timeout: ") && e.ends_with("(line 3)"), "{e}");
        let e = read("fuel = \"lots\"\n").unwrap_err();
        assert!(
            e.starts_with("fuel: invalid type") && e.ends_with("(line 1)"),
            "{e}"
        );
        let e = read("allow-net = [\"a..b\"]\n").unwrap_err();
        assert!(e.starts_with("allow-net: invalid pattern 'a..b'"), "{e}");
        let e = read("\nalow-read = []\n").unwrap_err();
        assert!(e.starts_with("unknown key `alow-read` (line 2)"), "{e}");
        let e = read("timeout = \n").unwrap_err();
        assert!(e.contains("(line 1)"), "{e}");
    }

    #[test]
    fn a_policy_over_another_keeps_what_it_gives() {
        let mine = read("timeout = \"1s\"\nparams = { a = \"1\" }\n").unwrap();
        let under =
            read("timeout = \"2s\"\nfuel = 5\nallow-net = []\nparams = { a = \"0\", b = \"2\" }\n")
                .unwrap();
        let p = mine.or(under);
        assert_eq!(p.limits.timeout, Some(std::time::Duration::from_secs(1)));
        assert_eq!(p.limits.fuel, Some(5));
        assert_eq!(p.grants.allow_net, Some(vec![]));
        let params = p.params.unwrap();
        assert_eq!(params["a"].as_str(), Some("1"));
        assert_eq!(params["b"].as_str(), Some("2"));
    }
}
