//! The rule catalogue: every hadolint rule (same id, default severity and meaning) and every
//! BuildKit build check (by its name). Where the two are the same check, one entry carries
//! both names and one finding reports it.

use serde::Serialize;

/// How serious a finding is; `Ignore` findings are not reported. Ordered from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ignore,
    Style,
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ignore => "ignore",
            Severity::Style => "style",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// Parses a severity name as hadolint's config and flags spell it (`none` = `ignore`).
    pub fn parse(name: &str) -> Option<Severity> {
        match name.to_ascii_lowercase().as_str() {
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            "style" => Some(Severity::Style),
            "ignore" | "none" => Some(Severity::Ignore),
            _ => None,
        }
    }
}

/// One rule of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// hadolint's id (`DL3006`), or the BuildKit check's name when hadolint has no such rule.
    pub id: &'static str,
    /// The BuildKit check with the same meaning, if any.
    pub buildkit: Option<&'static str>,
    pub severity: Severity,
    /// The message of a finding (some rules add specifics to it).
    pub message: &'static str,
    /// The documentation page (Markdown): what it checks, why, examples, how to ignore.
    #[serde(skip)]
    pub page: &'static str,
}

impl Rule {
    /// Whether `name` (an id or a BuildKit check name, any case for the latter) names this rule.
    pub fn is_named(&self, name: &str) -> bool {
        self.id.eq_ignore_ascii_case(name)
            || self.buildkit.is_some_and(|b| b.eq_ignore_ascii_case(name))
    }

    /// Where the rule is documented.
    pub fn doc_url(&self) -> String {
        if self.id.starts_with("DL") {
            format!("https://github.com/hadolint/hadolint/wiki/{}", self.id)
        } else {
            format!(
                "https://docs.docker.com/reference/build-checks/{}/",
                kebab(self.id)
            )
        }
    }
}

fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A rule's documentation page (docs/rules/<ID>.md), built into the binary: a rule without
/// a page does not compile.
macro_rules! page {
    ($id:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/rules/",
            $id,
            ".md"
        ))
    };
}

/// A hadolint rule with no BuildKit twin.
macro_rules! dl {
    ($id:literal, $severity:expr, $message:expr $(,)?) => {
        Rule {
            id: $id,
            buildkit: None,
            severity: $severity,
            message: $message,
            page: page!($id),
        }
    };
}

/// A hadolint rule that is also a BuildKit check.
macro_rules! both {
    ($id:literal, $buildkit:literal, $severity:expr, $message:expr $(,)?) => {
        Rule {
            id: $id,
            buildkit: Some($buildkit),
            severity: $severity,
            message: $message,
            page: page!($id),
        }
    };
}

/// A BuildKit check hadolint does not have, by its name.
macro_rules! bk {
    ($name:literal, $severity:expr, $message:expr $(,)?) => {
        Rule {
            id: $name,
            buildkit: Some($name),
            severity: $severity,
            message: $message,
            page: page!($name),
        }
    };
}

use Severity::{Error, Ignore, Info, Style, Warning};

/// Every rule, in id order, BuildKit-only checks last.
pub static RULES: &[Rule] = &[
    dl!("DL1000", Error, "Dockerfile parse error"),
    dl!(
        "DL1001",
        Ignore,
        "Please refrain from using inline ignore pragmas `# hadolint ignore=DLxxxx`.",
    ),
    both!(
        "DL3000",
        "WorkdirRelativePath",
        Error,
        "Use absolute WORKDIR",
    ),
    dl!(
        "DL3001",
        Info,
        "For some bash commands it makes no sense running them in a Docker container like `ssh`, `vim`, `shutdown`, `service`, `ps`, `free`, `top`, `kill`, `mount`, `ifconfig`",
    ),
    dl!("DL3002", Warning, "Last USER should not be root"),
    dl!("DL3003", Warning, "Use WORKDIR to switch to a directory"),
    dl!(
        "DL3004",
        Error,
        "Do not use sudo as it leads to unpredictable behavior. Use a tool like gosu to enforce root",
    ),
    dl!(
        "DL3006",
        Warning,
        "Always tag the version of an image explicitly",
    ),
    dl!(
        "DL3007",
        Warning,
        "Using latest is prone to errors if the image will ever update. Pin the version explicitly to a release tag",
    ),
    dl!(
        "DL3008",
        Warning,
        "Pin versions in apt get install. Instead of `apt-get install <package>` use `apt-get install <package>=<version>`",
    ),
    dl!(
        "DL3009",
        Info,
        "Delete the apt-get lists after installing something",
    ),
    dl!(
        "DL3010",
        Info,
        "Use ADD for extracting archives into an image",
    ),
    dl!("DL3011", Error, "Valid UNIX ports range from 0 to 65535"),
    both!(
        "DL3012",
        "MultipleInstructionsDisallowed",
        Error,
        "Multiple `HEALTHCHECK` instructions",
    ),
    dl!(
        "DL3013",
        Warning,
        "Pin versions in pip. Instead of `pip install <package>` use `pip install <package>==<version>` or `pip install --requirement <requirements file>`",
    ),
    dl!(
        "DL3014",
        Warning,
        "Use the `-y` switch to avoid manual input `apt-get -y install <package>`",
    ),
    dl!(
        "DL3015",
        Info,
        "Avoid additional packages by specifying `--no-install-recommends`",
    ),
    dl!(
        "DL3016",
        Warning,
        "Pin versions in npm. Instead of `npm install <package>` use `npm install <package>@<version>`",
    ),
    dl!(
        "DL3018",
        Warning,
        "Pin versions in apk add. Instead of `apk add <package>` use `apk add <package>=<version>`",
    ),
    dl!(
        "DL3019",
        Info,
        "Use the `--no-cache` switch to avoid the need to use `--update` and remove `/var/cache/apk/*` when done installing packages",
    ),
    dl!(
        "DL3020",
        Error,
        "Use COPY instead of ADD for files and folders",
    ),
    dl!(
        "DL3021",
        Error,
        "COPY with more than 2 arguments requires the last argument to end with /",
    ),
    dl!(
        "DL3022",
        Warning,
        "`COPY --from` should reference a previously defined `FROM` alias",
    ),
    dl!(
        "DL3023",
        Error,
        "`COPY --from` cannot reference its own `FROM` alias",
    ),
    both!(
        "DL3024",
        "DuplicateStageName",
        Error,
        "FROM aliases (stage names) must be unique",
    ),
    both!(
        "DL3025",
        "JSONArgsRecommended",
        Warning,
        "Use arguments JSON notation for CMD and ENTRYPOINT arguments",
    ),
    dl!(
        "DL3026",
        Error,
        "Use only an allowed registry in the FROM image",
    ),
    dl!(
        "DL3027",
        Warning,
        "Do not use apt as it is meant to be a end-user tool, use apt-get or apt-cache instead",
    ),
    dl!(
        "DL3028",
        Warning,
        "Pin versions in gem install. Instead of `gem install <gem>` use `gem install <gem>:<version>`",
    ),
    dl!("DL3029", Warning, "Do not use --platform flag with FROM"),
    dl!(
        "DL3030",
        Warning,
        "Use the -y switch to avoid manual input `yum install -y <package`",
    ),
    dl!(
        "DL3032",
        Warning,
        "`yum clean all` missing after yum command.",
    ),
    dl!(
        "DL3033",
        Warning,
        "Specify version with `yum install -y <package>-<version>`.",
    ),
    dl!(
        "DL3034",
        Warning,
        "Non-interactive switch missing from `zypper` command: `zypper install -y`",
    ),
    dl!("DL3035", Warning, "Do not use `zypper dist-upgrade`."),
    dl!(
        "DL3036",
        Warning,
        "`zypper clean` missing after zypper use.",
    ),
    dl!(
        "DL3037",
        Warning,
        "Specify version with `zypper install -y <package>=<version>`.",
    ),
    dl!(
        "DL3038",
        Warning,
        "Use the -y switch to avoid manual input `dnf install -y <package>`",
    ),
    dl!(
        "DL3040",
        Warning,
        "`dnf clean all` missing after dnf command.",
    ),
    dl!(
        "DL3041",
        Warning,
        "Specify version with `dnf install -y <package>-<version>`",
    ),
    dl!(
        "DL3042",
        Warning,
        "Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`",
    ),
    dl!(
        "DL3043",
        Error,
        "`ONBUILD`, `FROM` or `MAINTAINER` triggered from within `ONBUILD` instruction.",
    ),
    dl!(
        "DL3044",
        Error,
        "Do not refer to an environment variable within the same `ENV` statement where it is defined.",
    ),
    dl!(
        "DL3045",
        Warning,
        "`COPY` to a relative destination without `WORKDIR` set.",
    ),
    dl!(
        "DL3046",
        Warning,
        "`useradd` without flag `-l` and high UID will result in excessively large Image.",
    ),
    dl!(
        "DL3047",
        Info,
        "Avoid use of wget without progress bar. Use `wget --progress=dot:giga <url>`. Or consider using `-q` or `-nv` (shorthands for `--quiet` or `--no-verbose`).",
    ),
    dl!("DL3048", Style, "Invalid label key."),
    dl!("DL3049", Info, "Label is missing."),
    dl!("DL3050", Info, "Superfluous label(s) present."),
    dl!("DL3051", Warning, "Label is empty."),
    dl!("DL3052", Warning, "Label is not a valid URL."),
    dl!(
        "DL3053",
        Warning,
        "Label is not a valid time format - must conform to RFC3339.",
    ),
    dl!("DL3054", Warning, "Label is not a valid SPDX identifier."),
    dl!("DL3055", Warning, "Label is not a valid git hash."),
    dl!(
        "DL3056",
        Warning,
        "Label does not conform to semantic versioning.",
    ),
    dl!("DL3057", Ignore, "`HEALTHCHECK` instruction missing."),
    dl!(
        "DL3058",
        Warning,
        "Label is not a valid email format - must conform to RFC5322.",
    ),
    dl!(
        "DL3059",
        Info,
        "Multiple consecutive `RUN` instructions. Consider consolidation.",
    ),
    dl!(
        "DL3060",
        Info,
        "`yarn cache clean` missing after `yarn install` was run.",
    ),
    dl!(
        "DL3061",
        Error,
        "Invalid instruction order. Dockerfile must begin with `FROM`, `ARG` or comment.",
    ),
    dl!(
        "DL3062",
        Warning,
        "Pin versions in go. Instead of `go install <package>` use `go install <package>@<version>`",
    ),
    both!(
        "DL3063",
        "ReservedStageName",
        Warning,
        "stage name should not be a reserved word",
    ),
    both!(
        "DL3064",
        "SecretsUsedInArgOrEnv",
        Warning,
        "Potentially sensitive data should not be used in the `ARG` or `ENV` commands",
    ),
    both!(
        "DL3065",
        "RedundantTargetPlatform",
        Warning,
        "Setting `FROM --platform` to predefined `$TARGETPLATFORM` is redundant as this is the default behavior",
    ),
    dl!(
        "DL3066",
        Info,
        "Non-numeric user-id may not be resolvable by host system",
    ),
    dl!(
        "DL3067",
        Warning,
        "Do not copy an entire filesystem from another stage",
    ),
    both!(
        "DL4000",
        "MaintainerDeprecated",
        Error,
        "MAINTAINER is deprecated",
    ),
    dl!("DL4001", Warning, "Either use Wget or Curl but not both"),
    both!(
        "DL4003",
        "MultipleInstructionsDisallowed",
        Warning,
        "Multiple `CMD` instructions found. If you list more than one `CMD` then only the last `CMD` will take effect",
    ),
    both!(
        "DL4004",
        "MultipleInstructionsDisallowed",
        Error,
        "Multiple `ENTRYPOINT` instructions found. If you list more than one `ENTRYPOINT` then only the last `ENTRYPOINT` will take effect",
    ),
    dl!("DL4005", Warning, "Use SHELL to change the default shell"),
    dl!(
        "DL4006",
        Warning,
        "Set the SHELL option -o pipefail before RUN with a pipe in it. If you are using /bin/sh in an alpine image or if your shell is symlinked to busybox then consider explicitly setting your SHELL to /bin/ash, or disable this check",
    ),
    bk!(
        "StageNameCasing",
        Warning,
        "Stage names should be lowercase",
    ),
    bk!(
        "FromAsCasing",
        Warning,
        "The 'as' keyword should match the case of the 'from' keyword",
    ),
    bk!("NoEmptyContinuation", Warning, "Empty continuation line"),
    bk!(
        "ConsistentInstructionCasing",
        Warning,
        "All commands within the Dockerfile should use the same casing (either upper or lower)",
    ),
    bk!(
        "UndefinedArgInFrom",
        Warning,
        "FROM argument is not declared",
    ),
    bk!("UndefinedVar", Warning, "Usage of undefined variable"),
    bk!(
        "LegacyKeyValueFormat",
        Warning,
        "Legacy key/value format with whitespace separator should not be used",
    ),
    bk!(
        "InvalidDefaultArgInFrom",
        Warning,
        "Default value for global ARG results in an empty or invalid base image name",
    ),
    bk!(
        "FromPlatformFlagConstDisallowed",
        Warning,
        "FROM --platform flag should not use a constant value",
    ),
    bk!(
        "CopyIgnoredFile",
        Warning,
        "Attempting to Copy file that is excluded by .dockerignore",
    ),
    bk!(
        "ExposeProtoCasing",
        Warning,
        "Protocol in EXPOSE instruction should be lowercase",
    ),
    bk!(
        "ExposeInvalidFormat",
        Warning,
        "IP address and host-port mapping should not be used in EXPOSE instruction",
    ),
    // Experimental in BuildKit: off unless enabled by severity override.
    bk!(
        "InvalidDefinitionDescription",
        Ignore,
        "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`",
    ),
];

/// The rule with this id.
pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Every rule that `name` names: the id of one, or a BuildKit name shared by several
/// (`MultipleInstructionsDisallowed` is DL3012, DL4003 and DL4004).
pub fn named(name: &str) -> impl Iterator<Item = &'static Rule> + '_ {
    RULES.iter().filter(move |r| r.is_named(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_findable() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(RULES[..i].iter().all(|o| o.id != r.id), "{}", r.id);
            assert_eq!(find(r.id).map(|f| f.id), Some(r.id));
        }
        assert_eq!(named("MultipleInstructionsDisallowed").count(), 3);
        assert_eq!(find("MaintainerDeprecated").map(|r| r.id), None);
        assert_eq!(
            named("maintainerdeprecated").next().map(|r| r.id),
            Some("DL4000")
        );
    }

    #[test]
    fn doc_urls() {
        assert_eq!(
            find("StageNameCasing").map(|r| r.doc_url()).as_deref(),
            Some("https://docs.docker.com/reference/build-checks/stage-name-casing/")
        );
    }
}
