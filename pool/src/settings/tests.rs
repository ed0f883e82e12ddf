//! `PoolConfig` from variables, readable durations, misspelt knobs.

use super::misspelt::edit_distance;
use super::*;
use std::collections::HashMap;

fn from(vars: &[(&str, &str)]) -> Result<PoolConfig, ConfigError> {
    let m: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    PoolConfig::from_vars("app_pool", m.keys().cloned(), |k| Ok(m.get(k).cloned()))
}

#[test]
fn durations_read_the_readable_way() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    // Microseconds: ASCII, the micro sign and the Greek letter mu.
    for us in ["250us", "250\u{b5}s", "250\u{3bc}s"] {
        assert_eq!(parse_duration(us), Ok(Duration::from_micros(250)), "{us}");
    }
    assert!(parse_duration("30").is_err(), "a unit is required");
    assert!(parse_duration("30 parsecs").is_err());
    assert!(parse_duration("").is_err());
    assert_eq!(parse_limit("off"), Ok(None));
}

#[test]
fn env_variables_set_only_their_knobs() {
    let c = from(&[
        ("APP_POOL_MAX_SIZE", "16"),
        ("APP_POOL_ACQUIRE_TIMEOUT", "2s"),
        ("APP_POOL_MAX_LIFETIME", "off"),
        ("APP_POOL_NAME", "orders"),
    ])
    .unwrap();
    assert_eq!(c.max_size, Some(16));
    assert_eq!(c.acquire_timeout, Some(Duration::from_secs(2)));
    assert_eq!(c.max_lifetime, Some(None));
    assert_eq!(c.idle_timeout, None);
    assert_eq!(c.name.as_deref(), Some("orders"));
}

#[test]
fn a_value_that_does_not_parse_names_its_variable() {
    let e = from(&[("APP_POOL_ACQUIRE_TIMEOUT", "5")]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Env { var, .. } if var == "APP_POOL_ACQUIRE_TIMEOUT"),
        "{e:?}"
    );
    assert!(e.to_string().contains("APP_POOL_ACQUIRE_TIMEOUT"), "{e}");
    let e = from(&[("APP_POOL_MAX_SIZE", "many")]).unwrap_err();
    assert!(e.to_string().contains("APP_POOL_MAX_SIZE"), "{e}");
    let e = from(&[("APP_POOL_ACQUIRE_TIMEOUT", "off")]).unwrap_err();
    assert!(e.to_string().contains("unit"), "{e}");
}

#[test]
fn a_misspelt_knob_is_an_error_naming_the_knob() {
    for (typo, knob) in [
        ("APP_POOL_MAX_SIZ", "APP_POOL_MAX_SIZE"),
        ("APP_POOL_MAXSIZE", "APP_POOL_MAX_SIZE"),
        ("APP_POOL_MAX-SIZE", "APP_POOL_MAX_SIZE"),
        ("app_pool_max_size", "APP_POOL_MAX_SIZE"),
        ("APP_POOL_max_size", "APP_POOL_MAX_SIZE"),
        ("APP_POOL_Max_Size", "APP_POOL_MAX_SIZE"),
        ("APP_POOL__MAX_SIZE", "APP_POOL_MAX_SIZE"),
        ("APP_POOL___MAX_SIZE", "APP_POOL_MAX_SIZE"),
        ("APP_POOL_AQUIRE_TIMEOUT", "APP_POOL_ACQUIRE_TIMEOUT"),
        ("APP_POOL_IDLE_TIMOUT", "APP_POOL_IDLE_TIMEOUT"),
        ("APP_POOL_NAMES", "APP_POOL_NAME"),
    ] {
        let e = from(&[(typo, "16"), ("APP_POOL_MIN_IDLE", "2")]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Env { var, .. } if var == typo),
            "{typo}: {e:?}"
        );
        assert!(
            e.to_string().contains(&format!("did you mean {knob}?")),
            "{e}"
        );
    }
}

#[test]
fn other_variables_under_the_prefix_are_left_alone() {
    let c = from(&[
        ("APP_POOL_URL", "postgres://db"),
        ("APP_POOL_HOST", "db"),
        ("APP_POOL_MODE", "rw"),
        ("APP_POOL_USER", "app"),
        ("APP_POOLS", "3"),
        ("APP_POOL_MAX_SIZE", "4"),
        ("OTHER_MAX_SIZ", "9"),
        ("APP_POOL_2_MAX_SIZE", "8"),
        ("APP_POOL_RO_NAME", "replica"),
        ("APP_POOL_MAX_IDLE", "10"),
        ("APP_POOL_MIN_SIZE", "1"),
    ])
    .unwrap();
    assert_eq!(c.max_size, Some(4));
    // An empty prefix looks at no other variable.
    let c = PoolConfig::from_vars("", ["MAX_SIZ".to_owned()], |_| Ok(None)).unwrap();
    assert_eq!(c, PoolConfig::default());
}

#[test]
fn edit_distances() {
    assert_eq!(edit_distance("MAX_SIZE", "MAX_SIZE"), 0);
    assert_eq!(edit_distance("MAX_SIZ", "MAX_SIZE"), 1);
    assert_eq!(edit_distance("MIN_SIZE", "MAX_SIZE"), 2);
    assert_eq!(edit_distance("", "NAME"), 4);
    assert_eq!(edit_distance("MODE", "NAME"), 3);
}
