//! Words a front end spells its own way: option names, the steps a hint
//! suggests, and the hints themselves.
//!
//! The library names an option as [`OptionName::AuthDir`], not as
//! `--auth-dir` or `auth_dir`: each front end implements [`Spelling`] and
//! renders errors and hints with it, so a Python caller never reads a CLI
//! flag and the CLI never reads a keyword argument.

use std::fmt;

/// An option of a caw operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OptionName {
    /// The agents to set up or show.
    Agents,
    /// The home credentials are read from (`H`).
    SourceHome,
    /// The auth dir (`A`).
    AuthDir,
    /// The agent user's home in the container (`C`).
    ContainerHome,
    /// Where the auth dir is mounted in the container (`M`).
    MountPoint,
    /// `live` or `bind`.
    Mode,
    /// A container directory to mark trusted.
    Trust,
    /// Teardown despite host symlinks into the auth dir.
    Force,
    /// The output form of the docker flags.
    Format,
    /// The `HOME` environment variable.
    Home,
    /// Keep refresh tokens out of containers.
    HoldRefreshToken,
    /// The SELinux label on caw's mounts (`none`, `z`).
    SelinuxLabel,
}

impl OptionName {
    /// Plain words for the option, for messages that no front end renders.
    pub fn words(self) -> &'static str {
        match self {
            OptionName::Agents => "agents",
            OptionName::SourceHome => "source home",
            OptionName::AuthDir => "auth dir",
            OptionName::ContainerHome => "container home",
            OptionName::MountPoint => "mount point",
            OptionName::Mode => "mode",
            OptionName::Trust => "trusted directory",
            OptionName::Force => "force",
            OptionName::Format => "format",
            OptionName::Home => "HOME",
            OptionName::HoldRefreshToken => "hold refresh token",
            OptionName::SelinuxLabel => "SELinux label",
        }
    }
}

impl fmt::Display for OptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words())
    }
}

/// Something a hint tells the user to do, in each front end's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Write the auth dir (`caw auth setup`).
    Setup,
    /// Remove the auth dir (`caw auth teardown`).
    Teardown,
}

/// How a front end spells options and steps.
pub trait Spelling {
    /// The option's name as the user types it (`--auth-dir`, `auth_dir`),
    /// or `None` when this front end has no such option.
    fn option(&self, option: OptionName) -> Option<String>;

    /// The option given `value` (`--format json`, `format="json"`); for a
    /// switch such as [`OptionName::Force`] `value` is empty and this is the
    /// switch turned on (`--force`, `force=True`).
    fn option_value(&self, option: OptionName, value: &str) -> Option<String>;

    /// A step, with its verb: "run `caw auth setup`".
    fn step(&self, step: Step) -> String;
}

/// The spelling of [`fmt::Display`]: plain words, no front end's syntax.
pub struct PlainWords;

impl Spelling for PlainWords {
    fn option(&self, option: OptionName) -> Option<String> {
        Some(option.words().to_string())
    }

    fn option_value(&self, option: OptionName, value: &str) -> Option<String> {
        Some(if value.is_empty() {
            option.words().to_string()
        } else {
            format!("{} {value}", option.words())
        })
    }

    fn step(&self, step: Step) -> String {
        match step {
            Step::Setup => "run setup".into(),
            Step::Teardown => "run teardown".into(),
        }
    }
}

/// One piece of a [`Hint`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HintPart {
    /// Words shown as they are.
    Text(String),
    /// An option's name, in backticks.
    Option(OptionName),
    /// An option with a value, or a switch turned on (empty value), in backticks.
    OptionValue(OptionName, &'static str),
    /// A step, with its verb.
    Step(Step),
    /// A clause shown only where the front end has every option it names.
    IfAvailable(Vec<HintPart>),
}

impl From<&'static str> for HintPart {
    fn from(text: &'static str) -> Self {
        HintPart::Text(text.to_string())
    }
}

impl From<String> for HintPart {
    fn from(text: String) -> Self {
        HintPart::Text(text)
    }
}

impl From<OptionName> for HintPart {
    fn from(option: OptionName) -> Self {
        HintPart::Option(option)
    }
}

impl From<Step> for HintPart {
    fn from(step: Step) -> Self {
        HintPart::Step(step)
    }
}

/// A one-line suggestion for the user, rendered by each front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint(pub Vec<HintPart>);

impl Hint {
    /// The hint in `spelling`'s words.
    pub fn render(&self, spelling: &dyn Spelling) -> String {
        let mut out = String::new();
        render_parts(&self.0, spelling, &mut out);
        out
    }
}

/// Append `parts` to `out`; `None` (and nothing appended) when one of them
/// names an option `spelling` does not have.
fn render_parts(parts: &[HintPart], spelling: &dyn Spelling, out: &mut String) -> Option<()> {
    for part in parts {
        match part {
            HintPart::Text(text) => out.push_str(text),
            HintPart::Option(option) => out.push_str(&format!("`{}`", spelling.option(*option)?)),
            HintPart::OptionValue(option, value) => {
                out.push_str(&format!("`{}`", spelling.option_value(*option, value)?))
            }
            HintPart::Step(step) => out.push_str(&spelling.step(*step)),
            HintPart::IfAvailable(clause) => {
                let mut text = String::new();
                if render_parts(clause, spelling, &mut text).is_some() {
                    out.push_str(&text);
                }
            }
        }
    }
    Some(())
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&PlainWords))
    }
}

/// A [`Hint`] from pieces: `hint!["run ", Step::Setup, " first"]`.
macro_rules! hint {
    ($($part:expr),* $(,)?) => {
        $crate::hint::Hint(vec![$($crate::hint::HintPart::from($part)),*])
    };
}
pub(crate) use hint;

#[cfg(test)]
mod tests {
    use super::*;

    struct Cli;

    impl Spelling for Cli {
        fn option(&self, option: OptionName) -> Option<String> {
            (option != OptionName::Mode).then(|| format!("--{option:?}").to_lowercase())
        }
        fn option_value(&self, option: OptionName, value: &str) -> Option<String> {
            Some(format!("{} {value}", self.option(option)?))
        }
        fn step(&self, _: Step) -> String {
            "run `caw auth setup`".into()
        }
    }

    #[test]
    fn parts_render_in_the_front_ends_words() {
        let h = hint![Step::Setup, " or pass ", OptionName::Force];
        assert_eq!(h.render(&Cli), "run `caw auth setup` or pass `--force`");
        assert_eq!(h.to_string(), "run setup or pass `force`");
    }

    #[test]
    fn a_clause_naming_a_missing_option_is_left_out() {
        let h = hint![
            "a",
            HintPart::IfAvailable(vec![", b ".into(), OptionName::Mode.into()]),
            HintPart::IfAvailable(vec![", c ".into(), OptionName::Agents.into()]),
        ];
        assert_eq!(h.render(&Cli), "a, c `--agents`");
    }
}
