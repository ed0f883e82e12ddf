//! How each knob of a [`PoolConfig`](super::PoolConfig) is read from a file and written
//! back (`serde`): every error a value can cause names its knob, whatever the format
//! (`"max_size": "ten"` says "expected a whole number for `max_size`", not only "expected
//! usize at line 1 column 19").
//!
//! One reader per kind of value ([`Read`]), each told its knob; `null` or a missing key
//! leaves the knob unset. The `knob!` list at the bottom gives each field its reader.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{Deserializer, Error, Visitor};
use serde::Serializer;

use super::duration::{duration_text, parse_duration};

/// A kind of value, read for the knob `knob`.
pub(super) trait Read: Sized {
    fn read<'de, D: Deserializer<'de>>(d: D, knob: &'static str) -> Result<Self, D::Error>;
}

/// Reads an optional knob: `null` (or a missing key, through `serde(default)`) is `None`.
pub(super) fn optional<'de, D: Deserializer<'de>, R: Read>(
    d: D,
    knob: &'static str,
) -> Result<Option<R>, D::Error> {
    struct V<R>(&'static str, PhantomData<R>);
    impl<'de, R: Read> Visitor<'de> for V<R> {
        type Value = Option<R>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a value for `{}`", self.0)
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            R::read(d, self.0).map(Some)
        }
    }
    d.deserialize_option(V(knob, PhantomData))
}

/// A whole number that fits the knob's type.
pub(super) struct Whole<N>(pub(super) N);

impl<N: TryFrom<u64>> Read for Whole<N> {
    fn read<'de, D: Deserializer<'de>>(d: D, knob: &'static str) -> Result<Self, D::Error> {
        struct V(&'static str);
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a whole number for `{}`", self.0)
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom(format!("`{}` = {v} is negative", self.0)))
            }
        }
        let v = d.deserialize_u64(V(knob))?;
        N::try_from(v)
            .map(Whole)
            .map_err(|_| D::Error::custom(format!("`{knob}` = {v} is too large")))
    }
}

/// Text (the pool's name).
pub(super) struct Text(pub(super) String);

impl Read for Text {
    fn read<'de, D: Deserializer<'de>>(d: D, knob: &'static str) -> Result<Self, D::Error> {
        struct V(&'static str);
        impl Visitor<'_> for V {
            type Value = String;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "text for `{}`", self.0)
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
        }
        d.deserialize_string(V(knob)).map(Text)
    }
}

/// `off`, `warn` or `error`, in any case (as the environment reads it).
impl Read for crate::DeadlockDetection {
    fn read<'de, D: Deserializer<'de>>(d: D, knob: &'static str) -> Result<Self, D::Error> {
        let Text(text) = Text::read(d, knob)?;
        text.parse()
            .map_err(|reason| D::Error::custom(format!("`{knob}` = `{text}` {reason}")))
    }
}

/// A duration as text (`"30s"`) or whole milliseconds; with `LIMIT`, also `"off"`
/// (`Some(None)`), for the limits that can be switched off.
pub(super) struct Span<const LIMIT: bool>(pub(super) Option<Duration>);

impl<const LIMIT: bool> Read for Span<LIMIT> {
    fn read<'de, D: Deserializer<'de>>(d: D, knob: &'static str) -> Result<Self, D::Error> {
        /// By hand rather than `#[serde(untagged)]`, whose only error is "data did not
        /// match any variant": a negative or fractional number, or a value of another
        /// type, says that it is a duration and what is wrong with it.
        struct V(&'static str, bool);
        impl Visitor<'_> for V {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a duration for `{}`: text such as \"30s\" or \"250ms\"{}, or whole \
                     milliseconds",
                    self.0,
                    if self.1 { " (or \"off\")" } else { "" }
                )
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(Duration::from_millis(v)))
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
                match u64::try_from(v) {
                    Ok(ms) => self.visit_u64(ms),
                    Err(_) => Err(E::custom(format!(
                        "`{}`: duration `{v}` is negative",
                        self.0
                    ))),
                }
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "`{}`: duration `{v}` is not a whole number of milliseconds (write a \
                     fraction as text, like \"1.5ms\")",
                    self.0
                )))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                let off = matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "off" | "none" | "disabled"
                );
                if self.1 && off {
                    return Ok(None);
                }
                parse_duration(v)
                    .map(Some)
                    .map_err(|r| E::custom(format!("`{}`: duration `{v}` {r}", self.0)))
            }
        }
        d.deserialize_any(V(knob, LIMIT)).map(Span)
    }
}

/// Writes a duration as text that reads back exactly.
pub(super) fn write_duration<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(d) => s.serialize_str(&duration_text(*d)),
        None => s.serialize_none(),
    }
}

/// Writes a limit: a duration, `"off"`, or nothing when unset.
pub(super) fn write_limit<S: Serializer>(
    v: &Option<Option<Duration>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(Some(d)) => s.serialize_str(&duration_text(*d)),
        Some(None) => s.serialize_str("off"),
        None => s.serialize_none(),
    }
}

/// Writes a knob whose value serializes as itself (a number, text, a mode).
pub(super) fn write_plain<V: serde::Serialize, S: Serializer>(
    v: &Option<V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(v, s)
}

/// One module per knob, named as the field, for `serde(with)`: its reader and its writer.
macro_rules! knobs {
    ($($knob:ident: $ty:ty => |$r:ident: $read:ty| $out:expr, $write:ident;)*) => {
        $(
            pub(in crate::settings) mod $knob {
                use super::*;
                pub(in crate::settings) fn deserialize<'de, D: Deserializer<'de>>(
                    d: D,
                ) -> Result<Option<$ty>, D::Error> {
                    Ok(optional::<D, $read>(d, stringify!($knob))?.map(|$r| $out))
                }
                pub(in crate::settings) fn serialize<S: Serializer>(
                    v: &Option<$ty>,
                    s: S,
                ) -> Result<S::Ok, S::Error> {
                    $write(v, s)
                }
            }
        )*
    };
}

// Without `LIMIT` a span is always a duration (`unwrap_or_default` never defaults).
knobs! {
    max_size: usize => |n: Whole<usize>| n.0, write_plain;
    min_idle: usize => |n: Whole<usize>| n.0, write_plain;
    max_uses: u64 => |n: Whole<u64>| n.0, write_plain;
    circuit_failures: u32 => |n: Whole<u32>| n.0, write_plain;
    name: String => |t: Text| t.0, write_plain;
    deadlock_detection: crate::DeadlockDetection => |m: crate::DeadlockDetection| m, write_plain;
    acquire_timeout: Duration => |s: Span<false>| s.0.unwrap_or_default(), write_duration;
    create_timeout: Duration => |s: Span<false>| s.0.unwrap_or_default(), write_duration;
    validation_interval: Duration => |s: Span<false>| s.0.unwrap_or_default(), write_duration;
    starvation_threshold: Duration => |s: Span<false>| s.0.unwrap_or_default(), write_duration;
    circuit_cool_down: Duration => |s: Span<false>| s.0.unwrap_or_default(), write_duration;
    idle_timeout: Option<Duration> => |s: Span<true>| s.0, write_limit;
    max_lifetime: Option<Duration> => |s: Span<true>| s.0, write_limit;
    leak_threshold: Option<Duration> => |s: Span<true>| s.0, write_limit;
    reclaim_leaked: Option<Duration> => |s: Span<true>| s.0, write_limit;
}
