//! The forms `caw auth docker-flags` prints mounts in, and what each form
//! cannot carry. Its own module: errors name a form, and the mounts code
//! returns those errors.

use std::path::Path;

/// How to print mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlagFormat {
    /// `-v SRC:DST:ro …` on one line, for `$(…)`.
    #[default]
    V,
    /// A JSON array of argument strings.
    Json,
    /// `--mount type=bind,src=…,dst=…[,readonly] …` on one line.
    Mount,
}

impl FlagFormat {
    /// `"v"`, `"json"` or `"mount"`.
    pub fn name(self) -> &'static str {
        match self {
            FlagFormat::V => "v",
            FlagFormat::Json => "json",
            FlagFormat::Mount => "mount",
        }
    }

    /// What a path may not contain in this form, in words.
    pub fn refused(self) -> &'static str {
        match self {
            FlagFormat::V => "white space or `:`",
            FlagFormat::Json => "`:`",
            FlagFormat::Mount => "white space, `,` or `\"`",
        }
    }

    /// Whether `path` survives this form.
    pub fn accepts(self, path: &Path) -> bool {
        path.to_str().is_some_and(|text| self.check(text).is_none())
    }

    /// Why `text` cannot survive this form, if it cannot: `$(…)` splits the
    /// `v` and `mount` lines on white space, `-v` splits on `:`, and
    /// `--mount` is a CSV list (`,` and `"`).
    pub(crate) fn check(self, text: &str) -> Option<String> {
        let white = text.chars().any(char::is_whitespace);
        let bad = match self {
            FlagFormat::V if white => return Some("it contains white space".into()),
            FlagFormat::Mount if white => return Some("it contains white space".into()),
            FlagFormat::V | FlagFormat::Json => text.chars().find(|c| *c == ':'),
            FlagFormat::Mount => text.chars().find(|c| matches!(c, ',' | '"')),
        };
        bad.map(|c| format!("it contains `{c}`"))
    }
}
