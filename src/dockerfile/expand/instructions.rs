//! Which parts of which instruction BuildKit expands, and how.
//!
//! BuildKit expands an instruction when it is dispatched, with the scope of its stage at that
//! point (see [`crate::dockerfile::vars`]); FROM is expanded before any stage exists, with the
//! global ARGs only. Shell and exec forms of RUN, CMD and ENTRYPOINT are never expanded by
//! BuildKit: the shell in the container does it (so `RUN echo $HOME` sees the container's
//! HOME), and an exec form sees no expansion at all.

/// How the arguments (everything after the flags) of an instruction are expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgumentExpansion {
    /// Not expanded: RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER, and ONBUILD (whose
    /// instruction is expanded when it runs in the downstream build).
    Literal,
    /// Each argument through [`super::Lexer::expand_word`]: ADD and COPY sources and
    /// destination, VOLUME, WORKDIR, USER, STOPSIGNAL.
    EachWord,
    /// Each argument through [`super::Lexer::expand_words`], which may split it: EXPOSE.
    SplitWords,
    /// Keys and values of `k=v` pairs, each through [`super::Lexer::expand_word`]: ENV, LABEL.
    /// All pairs of one instruction expand with the scope from before it, so in
    /// `ENV A=1 B=$A` B gets the earlier A; apply the pairs to the scope afterwards.
    KeysAndValues,
    /// ARG: the name is never expanded; names of one ARG are declared in turn (in
    /// `ARG A=1 B=$A` B sees A); a default value is expanded only when no
    /// `--build-arg` overrides it (so an error in an overridden default goes unnoticed), and an
    /// override is taken as it is. [`crate::dockerfile::vars::Variables::arg`] does this.
    ArgDefault,
    /// FROM: the image reference, in the global scope (ARGs before the first FROM, the
    /// automatic platform ARGs, build-arg overrides), not the scope of any stage.
    GlobalScope,
}

/// What BuildKit expands in one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstructionExpansion {
    pub arguments: ArgumentExpansion,
    /// Flags (names without `--`) whose values go through [`super::Lexer::expand_word`] in
    /// the same scope as the arguments. For RUN `mount`, the value is first split as CSV and
    /// each `key=value` field's value is expanded on its own; `from=` must not contain `$`
    /// except as its last character (BuildKit rejects it when parsing).
    pub flags: &'static [&'static str],
    /// Heredoc bodies whose delimiter is unquoted are expanded with
    /// [`super::Lexer::heredoc`] (COPY and ADD). RUN heredoc bodies go to the shell as they are.
    pub heredocs: bool,
}

/// The expansion rules of the instruction with lower-case `keyword`, `None` for an unknown one.
///
/// Flags not listed are taken literally, for example COPY `--from` (a stage name, image or
/// index), `--exclude`, `--link`, `--parents`, RUN `--network` and `--security`, and
/// HEALTHCHECK's durations.
pub fn instruction_expansion(keyword: &str) -> Option<InstructionExpansion> {
    use ArgumentExpansion::*;
    let (arguments, flags, heredocs): (_, &'static [&'static str], _) = match keyword {
        "from" => (GlobalScope, &["platform"], false),
        "run" => (Literal, &["mount"], false),
        "cmd" | "entrypoint" | "shell" | "healthcheck" | "maintainer" | "onbuild" => {
            (Literal, &[], false)
        }
        "add" => (EachWord, &["chown", "chmod", "checksum"], true),
        "copy" => (EachWord, &["chown", "chmod"], true),
        "volume" | "workdir" | "user" | "stopsignal" => (EachWord, &[], false),
        "expose" => (SplitWords, &[], false),
        "env" | "label" => (KeysAndValues, &[], false),
        "arg" => (ArgDefault, &[], false),
        _ => return None,
    };
    Some(InstructionExpansion {
        arguments,
        flags,
        heredocs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instruction_has_a_rule_and_unknown_ones_none() {
        for keyword in [
            "from",
            "run",
            "cmd",
            "label",
            "maintainer",
            "expose",
            "env",
            "add",
            "copy",
            "entrypoint",
            "volume",
            "user",
            "workdir",
            "arg",
            "onbuild",
            "stopsignal",
            "healthcheck",
            "shell",
        ] {
            assert!(instruction_expansion(keyword).is_some(), "{keyword}");
        }
        assert_eq!(instruction_expansion("FROM"), None);
        assert_eq!(instruction_expansion("frobnicate"), None);
    }

    #[test]
    fn shell_commands_are_left_to_the_shell() {
        for keyword in ["run", "cmd", "entrypoint", "healthcheck", "shell"] {
            let rule = instruction_expansion(keyword).unwrap();
            assert_eq!(rule.arguments, ArgumentExpansion::Literal, "{keyword}");
            assert!(!rule.heredocs, "{keyword}");
        }
    }

    #[test]
    fn copy_expands_ownership_but_not_its_source_stage() {
        let copy = instruction_expansion("copy").unwrap();
        assert!(copy.flags.contains(&"chown") && copy.flags.contains(&"chmod"));
        assert!(!copy.flags.contains(&"from") && !copy.flags.contains(&"exclude"));
        assert!(copy.heredocs);
        let add = instruction_expansion("add").unwrap();
        assert!(add.flags.contains(&"checksum"));
        assert_eq!(instruction_expansion("from").unwrap().flags, &["platform"]);
        assert_eq!(instruction_expansion("run").unwrap().flags, &["mount"]);
    }
}
