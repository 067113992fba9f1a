//! Shell analysis of RUN scripts: the script is parsed with brush-parser (bash grammar) and
//! flattened into the simple commands it runs — in `&&`/`||`/`;` lists, pipelines, subshells,
//! brace groups, control flow, functions and command substitutions — each with its argument
//! words (quotes removed) and byte offsets into the script. Rules ask questions about these
//! commands the way hadolint asks ShellCheck's AST, so the findings mean the same.

use brush_parser::ast;
use brush_parser::word::{Parameter, ParameterExpr, WordPiece, WordPieceWithSource};
use brush_parser::{ParserOptions, SourcePosition};

/// What an unexpanded `$VAR`, `$(cmd)` or `$((expr))` stands for in an argument's text,
/// as ShellCheck's `oversimplify` renders it (so `apt-get install $PKGS` is unpinned).
pub const UNKNOWN_EXPANSION: &str = "${VAR}";

/// One argument word of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    /// The word with quotes and escapes removed and known variables expanded.
    pub text: String,
    /// Byte offset of the word in the script.
    pub offset: usize,
}

/// One simple command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The command word as written (`apt-get`, `/usr/bin/pip3`).
    pub name: String,
    /// The words after the command name.
    pub args: Vec<Arg>,
    /// Byte offset of the command word in the script.
    pub offset: usize,
    /// Set when this command is run by a wrapper such as `sudo` or `env`; the wrapper itself
    /// is listed too, as its own command.
    pub wrapper: Option<String>,
}

/// One flag of a command, in hadolint's sense: `--name[=v]` gives `name`, `-abc` gives `a`,
/// `b` and `c`; `arg` is the index of the argument it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagPart {
    pub name: String,
    pub arg: usize,
}

impl Command {
    /// The command name without its directory (`/usr/bin/pip3` → `pip3`).
    pub fn basename(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    pub fn is(&self, name: &str) -> bool {
        self.basename() == name
    }

    pub fn is_any(&self, names: &[&str]) -> bool {
        names.contains(&self.basename())
    }

    /// The argument texts.
    pub fn arg_texts(&self) -> impl Iterator<Item = &str> {
        self.args.iter().map(|a| a.text.as_str())
    }

    /// Whether any argument equals one of `words` (hadolint's `cmdHasArgs`).
    pub fn has_any_arg(&self, words: &[&str]) -> bool {
        self.arg_texts().any(|a| words.contains(&a))
    }

    pub fn has_arg(&self, word: &str) -> bool {
        self.arg_texts().any(|a| a == word)
    }

    pub fn has_arg_prefix(&self, prefix: &str) -> bool {
        self.arg_texts().any(|a| a.starts_with(prefix))
    }

    /// Whether `sequence` appears as consecutive arguments.
    pub fn has_arg_sequence(&self, sequence: &[&str]) -> bool {
        let args: Vec<&str> = self.arg_texts().collect();
        sequence.is_empty() || args.windows(sequence.len()).any(|w| w == sequence)
    }

    pub fn flags(&self) -> Vec<FlagPart> {
        let mut out = Vec::new();
        for (i, arg) in self.args.iter().enumerate() {
            let a = arg.text.as_str();
            if a == "--" || a == "-" {
                continue;
            }
            if let Some(long) = a.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or(long);
                out.push(FlagPart {
                    name: name.to_string(),
                    arg: i,
                });
            } else if let Some(short) = a.strip_prefix('-') {
                out.extend(short.chars().map(|c| FlagPart {
                    name: c.to_string(),
                    arg: i,
                }));
            }
        }
        out
    }

    pub fn has_flag(&self, name: &str) -> bool {
        self.flags().iter().any(|f| f.name == name)
    }

    pub fn has_any_flag(&self, names: &[&str]) -> bool {
        self.flags().iter().any(|f| names.contains(&f.name.as_str()))
    }

    fn flag_arg_indices(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.flags().iter().map(|f| f.arg).collect();
        v.dedup();
        v
    }

    /// Arguments that are not flags (hadolint's `getArgsNoFlags`).
    pub fn args_no_flags(&self) -> Vec<&Arg> {
        let flagged = self.flag_arg_indices();
        self.args
            .iter()
            .enumerate()
            .filter(|(i, _)| !flagged.contains(i))
            .map(|(_, a)| a)
            .collect()
    }

    /// The command without the argument following each of the given flags (the flag's value,
    /// as in `apt-get install -t bookworm-backports`), hadolint's `dropFlagArg`.
    pub fn drop_flag_values(&self, names: &[&str]) -> Command {
        let drop: Vec<usize> = self
            .flags()
            .iter()
            .filter(|f| names.contains(&f.name.as_str()))
            .map(|f| f.arg + 1)
            .collect();
        Command {
            args: self
                .args
                .iter()
                .enumerate()
                .filter(|(i, _)| !drop.contains(i))
                .map(|(_, a)| a.clone())
                .collect(),
            ..self.clone()
        }
    }

    /// The values given to a flag: `--uid=1000` or the next argument (`-u 1000`).
    pub fn flag_values(&self, name: &str) -> Vec<&str> {
        self.flags()
            .iter()
            .filter(|f| f.name == name)
            .filter_map(|f| {
                let arg = self.args.get(f.arg)?;
                match arg.text.strip_prefix("--").and_then(|l| l.split_once('=')) {
                    Some((_, inline)) => Some(inline),
                    None => self.args.get(f.arg + 1).map(|a| a.text.as_str()),
                }
            })
            .collect()
    }
}

/// A parsed script.
#[derive(Clone, Debug, Default)]
pub struct Script {
    pub commands: Vec<Command>,
    /// Whether any pipeline has more than one command (`a | b`).
    pub has_pipes: bool,
    /// Why the script could not be parsed, if it could not; then `commands` is empty.
    pub error: Option<String>,
}

impl Script {
    /// Parses `text`. `lookup` gives the value of a variable known to the linter (ARG/ENV in
    /// scope), so that `apt-get install $PACKAGES` is checked package by package.
    pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Script {
        let mut script = Script::default();
        let offsets = CharOffsets::new(text);
        let mut walker = Walker {
            lookup,
            out: &mut script,
            depth: 0,
        };
        if let Err(e) = walker.parse_into(text, 0, &offsets) {
            script.error = Some(e);
        }
        script
    }

    pub fn any(&self, pred: impl Fn(&Command) -> bool) -> bool {
        self.commands.iter().any(pred)
    }

    /// Commands not run through a wrapper (hadolint counts these).
    pub fn direct_commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.iter().filter(|c| c.wrapper.is_none())
    }

    /// The position of the first command matching `pred`.
    pub fn position(&self, pred: impl Fn(&Command) -> bool) -> Option<usize> {
        self.commands.iter().position(pred)
    }
}

/// Maps brush-parser's character indices to byte offsets.
struct CharOffsets {
    bytes: Option<Vec<usize>>,
    len: usize,
}

impl CharOffsets {
    fn new(text: &str) -> CharOffsets {
        let bytes = if text.is_ascii() {
            None
        } else {
            Some(text.char_indices().map(|(b, _)| b).collect())
        };
        CharOffsets {
            bytes,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.bytes {
            None => char_index.min(self.len),
            Some(v) => v.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

/// Deeply nested substitutions are not followed further (bounded work on hostile input).
const MAX_DEPTH: usize = 16;

/// Commands that run the command named by their first non-option argument.
const WRAPPERS: &[&str] = &[
    "sudo", "env", "nice", "nohup", "exec", "command", "builtin", "busybox", "time", "doas",
    "xargs",
];

struct Walker<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    out: &'a mut Script,
    depth: usize,
}

impl Walker<'_> {
    fn parse_into(&mut self, text: &str, base: usize, offsets: &CharOffsets) -> Result<(), String> {
        let options = ParserOptions::default();
        let mut parser = brush_parser::Parser::new(std::io::Cursor::new(text.as_bytes()), &options);
        let program = parser.parse_program().map_err(|e| e.to_string())?;
        let ctx = Ctx { base, offsets };
        for list in &program.complete_commands {
            self.compound_list(list, &ctx);
        }
        Ok(())
    }

    fn compound_list(&mut self, list: &ast::CompoundList, ctx: &Ctx) {
        for ast::CompoundListItem(and_or, _) in &list.0 {
            self.pipeline(&and_or.first, ctx);
            for next in &and_or.additional {
                match next {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p, ctx),
                }
            }
        }
    }

    fn pipeline(&mut self, pipeline: &ast::Pipeline, ctx: &Ctx) {
        if pipeline.seq.len() > 1 {
            self.out.has_pipes = true;
        }
        for command in &pipeline.seq {
            self.command(command, ctx);
        }
    }

    fn command(&mut self, command: &ast::Command, ctx: &Ctx) {
        match command {
            ast::Command::Simple(simple) => self.simple(simple, ctx),
            ast::Command::Compound(compound, _) => self.compound(compound, ctx),
            ast::Command::Function(f) => self.compound(&f.body.0, ctx),
            ast::Command::ExtendedTest(..) => {}
        }
    }

    fn compound(&mut self, compound: &ast::CompoundCommand, ctx: &Ctx) {
        match compound {
            ast::CompoundCommand::BraceGroup(g) => self.compound_list(&g.list, ctx),
            ast::CompoundCommand::Subshell(s) => self.compound_list(&s.list, ctx),
            ast::CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.word(w, ctx);
                }
                self.compound_list(&f.body.list, ctx);
            }
            ast::CompoundCommand::ArithmeticForClause(f) => self.compound_list(&f.body.list, ctx),
            ast::CompoundCommand::CaseClause(c) => {
                self.word(&c.value, ctx);
                for item in &c.cases {
                    if let Some(cmd) = &item.cmd {
                        self.compound_list(cmd, ctx);
                    }
                }
            }
            ast::CompoundCommand::IfClause(i) => {
                self.compound_list(&i.condition, ctx);
                self.compound_list(&i.then, ctx);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.compound_list(c, ctx);
                    }
                    self.compound_list(&e.body, ctx);
                }
            }
            ast::CompoundCommand::WhileClause(w) | ast::CompoundCommand::UntilClause(w) => {
                self.compound_list(&w.0, ctx);
                self.compound_list(&w.1.list, ctx);
            }
            ast::CompoundCommand::Coprocess(c) => self.command(&c.body, ctx),
            ast::CompoundCommand::Arithmetic(_) => {}
        }
    }

    fn simple(&mut self, simple: &ast::SimpleCommand, ctx: &Ctx) {
        let mut words: Vec<Arg> = Vec::new();
        let mut items: Vec<&ast::CommandPrefixOrSuffixItem> = Vec::new();
        if let Some(prefix) = &simple.prefix {
            items.extend(prefix.0.iter());
        }
        let name_word = simple.word_or_name.as_ref();
        for item in &items {
            self.item_substitutions(item, ctx);
        }
        let Some(name_word) = name_word else {
            return;
        };
        words.extend(self.word(name_word, ctx));
        if let Some(suffix) = &simple.suffix {
            for item in &suffix.0 {
                match item {
                    ast::CommandPrefixOrSuffixItem::Word(w) => words.extend(self.word(w, ctx)),
                    ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w) => {
                        words.extend(self.word(w, ctx))
                    }
                    other => self.item_substitutions(other, ctx),
                }
            }
        }
        let mut words = words.into_iter();
        let Some(first) = words.next() else {
            return;
        };
        let args: Vec<Arg> = words.collect();
        // A name that is itself an expansion (`$CC -o x`) names no known program.
        if first.text.contains(UNKNOWN_EXPANSION) {
            return;
        }
        let command = Command {
            name: first.text,
            args,
            offset: first.offset,
            wrapper: None,
        };
        let inner = wrapped_command(&command);
        self.out.commands.push(command);
        if let Some(inner) = inner {
            self.out.commands.push(inner);
        }
    }

    fn item_substitutions(&mut self, item: &ast::CommandPrefixOrSuffixItem, ctx: &Ctx) {
        match item {
            ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w)
            | ast::CommandPrefixOrSuffixItem::Word(w) => {
                self.word(w, ctx);
            }
            ast::CommandPrefixOrSuffixItem::IoRedirect(r) => self.redirect(r, ctx),
            ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, s) => {
                self.compound_list(&s.list, ctx)
            }
        }
    }

    fn redirect(&mut self, redirect: &ast::IoRedirect, ctx: &Ctx) {
        match redirect {
            ast::IoRedirect::File(_, _, ast::IoFileRedirectTarget::Filename(w))
            | ast::IoRedirect::HereString(_, w) => {
                self.word(w, ctx);
            }
            ast::IoRedirect::File(_, _, ast::IoFileRedirectTarget::ProcessSubstitution(_, s)) => {
                self.compound_list(&s.list, ctx)
            }
            _ => {}
        }
    }

    /// The argument words one shell word stands for (one, or several when an unquoted known
    /// variable holds a list), walking command substitutions inside it.
    fn word(&mut self, word: &ast::Word, ctx: &Ctx) -> Vec<Arg> {
        let start_char = word
            .loc
            .as_ref()
            .map(|l| position_index(&l.start))
            .unwrap_or(0);
        let offset = ctx.base + ctx.offsets.byte(start_char);
        let options = ParserOptions::default();
        let pieces = match brush_parser::word::parse(&word.value, &options) {
            Ok(p) => p,
            Err(_) => {
                return vec![Arg {
                    text: word.value.clone(),
                    offset,
                }];
            }
        };
        let mut parts = WordText::default();
        self.pieces(&pieces, false, &mut parts, offset, &word.value);
        parts.finish(offset)
    }

    fn pieces(
        &mut self,
        pieces: &[WordPieceWithSource],
        quoted: bool,
        out: &mut WordText,
        word_offset: usize,
        word_text: &str,
    ) {
        for p in pieces {
            match &p.piece {
                WordPiece::Text(s) | WordPiece::SingleQuotedText(s) => out.push(s),
                WordPiece::AnsiCQuotedText(s) => out.push(s),
                WordPiece::EscapeSequence(s) => out.push(s.strip_prefix('\\').unwrap_or(s)),
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    out.quoted_seen = true;
                    self.pieces(inner, true, out, word_offset, word_text)
                }
                WordPiece::TildeExpansion(_) => out.push("~"),
                WordPiece::ParameterExpansion(expr) => {
                    let value = simple_parameter(expr).and_then(|name| (self.lookup)(name));
                    match value {
                        Some(v) if !quoted => out.push_splittable(&v),
                        Some(v) => out.push(&v),
                        None => out.push(UNKNOWN_EXPANSION),
                    }
                }
                WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                    out.push(UNKNOWN_EXPANSION);
                    if self.depth < MAX_DEPTH {
                        let inner_start = substitution_body_offset(word_text, p.start_index, s);
                        let offsets = CharOffsets::new(s);
                        self.depth += 1;
                        // A substitution that does not parse hides no commands we can see.
                        let _ = self.parse_into(s, word_offset + inner_start, &offsets);
                        self.depth -= 1;
                    }
                }
                WordPiece::ArithmeticExpression(_) => out.push(UNKNOWN_EXPANSION),
            }
        }
    }
}

struct Ctx<'a> {
    base: usize,
    offsets: &'a CharOffsets,
}

fn position_index(p: &SourcePosition) -> usize {
    p.index
}

/// Where the body of a `$(...)` or backquoted substitution starts inside its word, in bytes.
fn substitution_body_offset(word: &str, piece_start_char: usize, body: &str) -> usize {
    let start = word
        .char_indices()
        .nth(piece_start_char)
        .map_or(0, |(b, _)| b);
    word.get(start..)
        .and_then(|rest| rest.find(body))
        .map_or(start, |i| start + i)
}

fn simple_parameter(expr: &ParameterExpr) -> Option<&str> {
    match expr {
        ParameterExpr::Parameter {
            parameter: Parameter::Named(name),
            indirect: false,
        } => Some(name),
        _ => None,
    }
}

/// The text of one shell word as it is built, split where an unquoted variable's value
/// holds spaces.
#[derive(Default)]
struct WordText {
    done: Vec<String>,
    current: String,
    quoted_seen: bool,
}

impl WordText {
    fn push(&mut self, s: &str) {
        self.current.push_str(s);
    }

    fn push_splittable(&mut self, value: &str) {
        let mut fields = value.split_ascii_whitespace().peekable();
        if value.starts_with(|c: char| c.is_ascii_whitespace()) && !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
        while let Some(f) = fields.next() {
            self.current.push_str(f);
            if fields.peek().is_some() {
                self.done.push(std::mem::take(&mut self.current));
            }
        }
        if value.ends_with(|c: char| c.is_ascii_whitespace()) && !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self, offset: usize) -> Vec<Arg> {
        if !self.current.is_empty() || (self.done.is_empty() && self.quoted_seen) {
            self.done.push(self.current);
        }
        self.done
            .into_iter()
            .map(|text| Arg { text, offset })
            .collect()
    }
}

/// The command a wrapper runs: `sudo -u x apt-get install` → `apt-get install`.
fn wrapped_command(outer: &Command) -> Option<Command> {
    let wrapper = outer.basename();
    if !WRAPPERS.contains(&wrapper) {
        return None;
    }
    let mut rest = outer.args.iter().enumerate();
    let takes_value: &[&str] = match wrapper {
        "sudo" => &["-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U"],
        "nice" => &["-n"],
        "env" => &["-u", "-C", "-S"],
        "xargs" => &["-I", "-L", "-n", "-P", "-s", "-d", "-E", "-a"],
        "exec" => &["-a"],
        _ => &[],
    };
    let position = loop {
        let (i, arg) = rest.next()?;
        let a = arg.text.as_str();
        if a == "--" {
            break i + 1;
        }
        if a.starts_with('-') && a.len() > 1 {
            if takes_value.contains(&a) {
                rest.next();
            }
            continue;
        }
        if wrapper == "env" && a.contains('=') {
            continue;
        }
        break i;
    };
    let name = outer.args.get(position)?;
    Some(Command {
        name: name.text.clone(),
        args: outer.args.get(position + 1..)?.to_vec(),
        offset: name.offset,
        wrapper: Some(wrapper.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Script {
        Script::parse(text, &|_| None)
    }

    fn names(s: &Script) -> Vec<&str> {
        s.commands.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn lists_pipes_subshells_and_substitutions() {
        let s = parse(
            "set -eux; apt-get update && (cd /x || exit 1) | tee log; v=\"$(dpkg --print-architecture | awk '{print}')\"",
        );
        assert_eq!(
            names(&s),
            ["set", "apt-get", "cd", "exit", "tee", "dpkg", "awk"]
        );
        assert!(s.has_pipes);
        assert_eq!(s.commands[1].offset, 10);
        assert_eq!(s.commands[5].offset, 63);
        assert!(s.error.is_none());
    }

    #[test]
    fn quotes_and_unknown_expansions() {
        let s = parse("apt-get install -y 'curl' \"git=1:2\" $PKG x${V}y");
        let c = &s.commands[0];
        let args: Vec<&str> = c.arg_texts().collect();
        assert_eq!(args, ["install", "-y", "curl", "git=1:2", "${VAR}", "x${VAR}y"]);
        assert_eq!(c.args[2].offset, 19);
    }

    #[test]
    fn known_variables_split_into_arguments() {
        let s = Script::parse("apk add $PKGS \"$PKGS\"", &|n| {
            (n == "PKGS").then(|| "curl=8 git".to_string())
        });
        let args: Vec<&str> = s.commands[0].arg_texts().collect();
        assert_eq!(args, ["add", "curl=8", "git", "curl=8 git"]);
    }

    #[test]
    fn wrappers_expose_the_command_they_run() {
        let s = parse("sudo -u root apt-get install x; env A=1 pip install y");
        assert_eq!(names(&s), ["sudo", "apt-get", "env", "pip"]);
        assert_eq!(s.commands[1].wrapper.as_deref(), Some("sudo"));
        assert_eq!(s.direct_commands().count(), 2);
    }

    #[test]
    fn flags_and_values() {
        let s = parse("apt-get install -t bookworm-backports -yq --no-install-recommends=1 foo");
        let c = &s.commands[0];
        assert!(c.has_flag("y") && c.has_flag("q") && c.has_flag("no-install-recommends"));
        let dropped = c.drop_flag_values(&["t"]);
        let plain: Vec<&str> = dropped.args_no_flags().iter().map(|a| a.text.as_str()).collect();
        assert_eq!(plain, ["install", "foo"]);
        assert_eq!(c.flag_values("t"), ["bookworm-backports"]);
    }

    #[test]
    fn control_flow_and_functions() {
        let s = parse(
            "for f in a b; do rm $f; done; if [ -e x ]; then cp a b; else mv a b; fi; f() { ls; }; case x in a) wget u;; esac",
        );
        assert_eq!(names(&s), ["rm", "[", "cp", "mv", "ls", "wget"]);
        assert!(!s.has_pipes);
    }

    #[test]
    fn a_syntax_error_is_reported_not_panicked() {
        let s = parse("if then fi (");
        assert!(s.error.is_some());
        assert!(s.commands.is_empty());
    }
}
