//! A variable under `from_env`'s prefix named like a knob but misspelt: found and named.

use super::VARS;
use crate::error::ConfigError;

/// The first of `names` under `prefix` that is not a knob's variable but nearly is one
/// (see `from_env`), as the error that names the knob it resembles.
pub(super) fn misspelt(
    prefix: &str,
    names: impl IntoIterator<Item = String>,
) -> Option<ConfigError> {
    let prefix = prefix.trim_end_matches('_').to_uppercase();
    if prefix.is_empty() {
        // Every variable of the process would be "under" an empty prefix.
        return None;
    }
    let lead = format!("{prefix}_");
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort(); // the same error whatever order the environment lists them in
    names.into_iter().find_map(|var| {
        let upper = var.to_uppercase();
        let suffix = upper.strip_prefix(&lead)?;
        if var == upper && VARS.contains(&suffix) {
            return None; // the knob itself, exactly as `from_env` reads it
        }
        if VARS.iter().any(|knob| {
            suffix
                .strip_suffix(knob)
                .and_then(|rest| rest.strip_suffix('_'))
                .is_some_and(|name| name.chars().any(|c| c.is_ascii_alphanumeric()))
        }) {
            // Another pool's knob under a longer prefix (`PREFIX_2_MAX_SIZE`,
            // `PREFIX_REPLICA_NAME`): not a misspelling of ours.
            return None;
        }
        let swapped = suffix
            .replace("MIN", "\0")
            .replace("MAX", "MIN")
            .replace('\0', "MAX");
        if swapped != suffix && VARS.contains(&swapped.as_str()) {
            // The other end of a limit (`MAX_IDLE`, `MIN_SIZE`): a setting the user meant,
            // not a typo; "did you mean" the opposite limit would mislead.
            return None;
        }
        let squashed: String = suffix.chars().filter(char::is_ascii_alphanumeric).collect();
        let near = VARS.iter().find(|knob| {
            let knob_squashed = knob.replace('_', "");
            // Short names need a closer match: `NAME` is one letter from `NAMES`,
            // two from `MODE`.
            let reach = if knob_squashed.len() <= 5 { 1 } else { 2 };
            squashed == knob_squashed || edit_distance(suffix, knob) <= reach
        })?;
        Some(ConfigError::Env {
            var,
            reason: format!("is not a pool setting; did you mean {lead}{near}?"),
        })
    })
}

/// The Levenshtein distance between two short ASCII-ish names, by characters.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
