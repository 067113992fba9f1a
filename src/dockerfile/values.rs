//! Typed flag and argument values: mounts, file modes, durations, ports, signals, networks.
//!
//! Each parser takes the (possibly expanded) text, so the planner can call it again after word
//! expansion when the raw word held variables (`--mount=type=cache,target=$DIR` is legal).

use serde::Serialize;
use thiserror::Error;

/// Why a value is not valid; the message names the value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct ValueError(pub String);

fn invalid(message: impl Into<String>) -> ValueError {
    ValueError(message.into())
}

/// Go's `strconv.ParseBool`, which BuildKit uses for boolean flags and mount options.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

/// A `RUN --mount` as BuildKit's runmount parses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub readonly: bool,
    pub id: Option<String>,
    pub sharing: CacheSharing,
    pub required: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// secret exposed as this environment variable.
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Parses the value of `--mount` (`type=cache,target=/root/.cache,sharing=locked`).
pub fn parse_mount(text: &str) -> Result<Mount, ValueError> {
    let mut kind = MountType::Bind;
    let fields = split_csv(text)?;
    // The type decides the defaults, so find it first.
    for field in &fields {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        if key.eq_ignore_ascii_case("type") {
            kind = match value.to_ascii_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                _ => return Err(invalid(format!("unsupported mount type {value:?}"))),
            };
        }
    }
    let mut mount = Mount {
        kind,
        target: None,
        source: None,
        from: None,
        readonly: matches!(kind, MountType::Bind | MountType::Secret | MountType::Ssh),
        id: None,
        sharing: CacheSharing::Shared,
        required: false,
        size: None,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = |v: Option<&str>| -> Result<String, ValueError> {
            v.map(str::to_string)
                .ok_or_else(|| invalid(format!("invalid field '{field}' must be a key=value pair")))
        };
        let boolean = |v: Option<&str>| -> Result<bool, ValueError> {
            match v {
                None => Ok(true),
                Some(v) => {
                    parse_bool(v).ok_or_else(|| invalid(format!("invalid value for {key}: {v}")))
                }
            }
        };
        let number = |v: Option<&str>, radix: u32| -> Result<u32, ValueError> {
            let v = need(v)?;
            u32::from_str_radix(&v, radix)
                .map_err(|_| invalid(format!("invalid value for {key}: {v}")))
        };
        match key.as_str() {
            "type" => {}
            "target" | "dst" | "destination" => mount.target = Some(need(value)?),
            "source" | "src" => mount.source = Some(need(value)?),
            "from" => mount.from = Some(need(value)?),
            "readonly" | "ro" => mount.readonly = boolean(value)?,
            "readwrite" | "rw" => mount.readonly = !boolean(value)?,
            "required" if matches!(kind, MountType::Secret | MountType::Ssh) => {
                mount.required = boolean(value)?
            }
            "id" => mount.id = Some(need(value)?),
            "sharing" if kind == MountType::Cache => {
                let v = need(value)?;
                mount.sharing = match v.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => return Err(invalid(format!("unsupported sharing value {v:?}"))),
                };
            }
            "size" if kind == MountType::Tmpfs => mount.size = Some(parse_size(&need(value)?)?),
            "env" if kind == MountType::Secret => mount.env = Some(need(value)?),
            "mode" if matches!(kind, MountType::Cache | MountType::Secret | MountType::Ssh) => {
                mount.mode = Some(number(value, 8)?)
            }
            "uid" if matches!(kind, MountType::Cache | MountType::Secret | MountType::Ssh) => {
                mount.uid = Some(number(value, 10)?)
            }
            "gid" if matches!(kind, MountType::Cache | MountType::Secret | MountType::Ssh) => {
                mount.gid = Some(number(value, 10)?)
            }
            _ => return Err(invalid(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    match kind {
        MountType::Bind | MountType::Cache | MountType::Tmpfs if mount.target.is_none() => {
            return Err(invalid(format!(
                "mount type {} requires a target",
                serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )));
        }
        MountType::Secret
            if mount.id.is_none() && mount.target.is_none() && mount.env.is_none() =>
        {
            return Err(invalid("secret mount requires an id, a target or an env"));
        }
        _ => {}
    }
    if mount.from.is_some() && mount.kind == MountType::Tmpfs {
        return Err(invalid("'from' is not supported for tmpfs mounts"));
    }
    Ok(mount)
}

/// Splits a CSV record as Go's encoding/csv does for one line: fields may be quoted.
fn split_csv(text: &str) -> Result<Vec<String>, ValueError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_field_start => {
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => field.push(c),
                        None => return Err(invalid(format!("unterminated quote in {text:?}"))),
                    }
                }
                at_field_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    fields.push(field);
    Ok(fields.into_iter().filter(|f| !f.is_empty()).collect())
}

/// A size like `64m`, `1GiB` or `1024` (go-units RAMInBytes: binary multiples).
pub fn parse_size(text: &str) -> Result<u64, ValueError> {
    let bad = || invalid(format!("invalid size: {text:?}"));
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let multiplier: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// A file mode for `--chmod`: octal, or symbolic clauses like `u=rwX,go=rX`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Chmod {
    Octal(u32),
    Symbolic(Vec<ModeClause>),
}

/// One symbolic clause: who (bits of u, g, o; empty means all), then operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModeClause {
    pub who: String,
    pub ops: Vec<(char, String)>,
}

pub fn parse_chmod(text: &str) -> Result<Chmod, ValueError> {
    let bad = || {
        invalid(format!(
            "invalid chmod value {text:?}: expected an octal mode or symbolic clauses like u=rwX,go=rX"
        ))
    };
    if !text.is_empty() && text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        let mode = u32::from_str_radix(text, 8).map_err(|_| bad())?;
        if mode > 0o7777 {
            return Err(bad());
        }
        return Ok(Chmod::Octal(mode));
    }
    let mut clauses = Vec::new();
    for clause in text.split(',') {
        let who_len = clause
            .find(|c: char| !matches!(c, 'u' | 'g' | 'o' | 'a'))
            .unwrap_or(clause.len());
        let (who, mut rest) = clause.split_at(who_len);
        let mut ops = Vec::new();
        while let Some(op) = rest.chars().next().filter(|c| matches!(c, '+' | '-' | '=')) {
            rest = &rest[1..];
            let perm_len = rest
                .find(|c: char| !matches!(c, 'r' | 'w' | 'x' | 'X' | 's' | 't' | 'u' | 'g' | 'o'))
                .unwrap_or(rest.len());
            let (perms, tail) = rest.split_at(perm_len);
            let copies = perms
                .chars()
                .filter(|c| matches!(c, 'u' | 'g' | 'o'))
                .count();
            if copies > 0 && perms.len() != 1 {
                return Err(bad());
            }
            ops.push((op, perms.to_string()));
            rest = tail;
        }
        if ops.is_empty() || !rest.is_empty() {
            return Err(bad());
        }
        clauses.push(ModeClause {
            who: who.to_string(),
            ops,
        });
    }
    Ok(Chmod::Symbolic(clauses))
}

impl Chmod {
    /// The mode a file gets, starting from `mode` (its current permission bits).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let mut mode = mode & 0o7777;
        for clause in clauses {
            let who = if clause.who.is_empty() || clause.who.contains('a') {
                0o7777
            } else {
                let mut mask = 0;
                if clause.who.contains('u') {
                    mask |= 0o4700;
                }
                if clause.who.contains('g') {
                    mask |= 0o2070;
                }
                if clause.who.contains('o') {
                    mask |= 0o1007;
                }
                mask
            };
            for (op, perms) in &clause.ops {
                let mut bits = 0;
                for p in perms.chars() {
                    bits |= match p {
                        'r' => 0o444,
                        'w' => 0o222,
                        'x' => 0o111,
                        'X' if is_dir || mode & 0o111 != 0 => 0o111,
                        's' => 0o6000,
                        't' => 0o1000,
                        'u' => copy_bits((mode >> 6) & 7),
                        'g' => copy_bits((mode >> 3) & 7),
                        'o' => copy_bits(mode & 7),
                        _ => 0,
                    };
                }
                let bits = bits & who;
                match op {
                    '+' => mode |= bits,
                    '-' => mode &= !bits,
                    _ => mode = (mode & !who) | bits,
                }
            }
        }
        mode
    }
}

fn copy_bits(rwx: u32) -> u32 {
    rwx | (rwx << 3) | (rwx << 6)
}

/// A Go duration (`1m30s`, `500ms`, `1.5h`) in nanoseconds.
pub fn parse_go_duration(text: &str) -> Result<std::time::Duration, ValueError> {
    let bad = || invalid(format!("time: invalid duration {text:?}"));
    let mut rest = text;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| invalid(format!("time: missing unit in duration {text:?}")))?;
        if number_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => {
                return Err(invalid(format!(
                    "time: unknown unit {unit:?} in duration {text:?}"
                )));
            }
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    if negative && total > 0.0 {
        return Err(invalid(format!("duration can't be negative: {text:?}")));
    }
    if total >= 9.223_372_036_854_776e18 {
        return Err(invalid(format!("time: invalid duration {text:?}")));
    }
    Ok(std::time::Duration::from_nanos(total as u64))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// An EXPOSE entry: a port or range with its protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PortSpec {
    pub start: u16,
    pub end: u16,
    pub protocol: Protocol,
}

pub fn parse_port(text: &str) -> Result<PortSpec, ValueError> {
    let (range, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return Err(invalid(format!("invalid proto: {proto}"))),
    };
    let port = |p: &str| -> Result<u16, ValueError> {
        p.parse::<u16>()
            .ok()
            .filter(|&n| n > 0 || p == "0")
            .ok_or_else(|| invalid(format!("invalid containerPort: {p}")))
    };
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(range)?;
            (p, p)
        }
    };
    if end < start {
        return Err(invalid(format!(
            "invalid range specified for container port: {range}"
        )));
    }
    Ok(PortSpec {
        start,
        end,
        protocol,
    })
}

const SIGNALS: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// A signal number from `SIGTERM`, `TERM`, `15` or `SIGRTMIN+3`.
pub fn parse_signal(text: &str) -> Result<i32, ValueError> {
    let bad = || invalid(format!("invalid signal: {text}"));
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(s, _)| *s == name) {
        return Ok(n);
    }
    let realtime = |base: i32, rest: &str, sign: i32| -> Result<i32, ValueError> {
        let offset: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| bad())?
        };
        let n = base + sign * offset;
        if (34..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return realtime(34, rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return realtime(64, rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    Err(bad())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

pub fn parse_network(text: &str) -> Result<NetworkMode, ValueError> {
    match text {
        "default" => Ok(NetworkMode::Default),
        "none" => Ok(NetworkMode::None),
        "host" => Ok(NetworkMode::Host),
        _ => Err(invalid(format!("unsupported network mode {text:?}"))),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

pub fn parse_security(text: &str) -> Result<SecurityMode, ValueError> {
    match text {
        "sandbox" => Ok(SecurityMode::Sandbox),
        "insecure" => Ok(SecurityMode::Insecure),
        _ => Err(invalid(format!("unsupported security mode {text:?}"))),
    }
}

/// A stage name after `AS`: `^[a-z][a-z0-9-_.]*$` (BuildKit lowercases it first).
pub fn parse_stage_name(text: &str) -> Result<String, ValueError> {
    let lower = text.to_ascii_lowercase();
    let mut bytes = lower.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if valid {
        Ok(lower)
    } else {
        Err(invalid(format!(
            "invalid name for build stage: {text:?}, name can't start with a number or contain symbols"
        )))
    }
}

/// A content digest `algorithm:hex` as ADD --checksum takes it (sha256, sha384 or sha512).
pub fn parse_digest(text: &str) -> Result<String, ValueError> {
    let bad = || {
        invalid(format!(
            "invalid checksum digest {text:?}: expected sha256:<64 hex digits>"
        ))
    };
    let (algorithm, hex) = text.split_once(':').ok_or_else(bad)?;
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(bad()),
    };
    let lower_hex = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex.len() != len || !lower_hex {
        return Err(bad());
    }
    Ok(text.to_string())
}

/// The `# check=` directive: `skip=Rule1,Rule2` (or `all`), `error=true`,
/// `experimental=Rule3` (or `all`), separated by `;`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CheckDirective {
    pub skip: Vec<String>,
    pub skip_all: bool,
    pub error: bool,
    pub experimental: Vec<String>,
    pub experimental_all: bool,
}

pub fn parse_check_directive(text: &str) -> Result<CheckDirective, ValueError> {
    let mut check = CheckDirective::default();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| invalid(format!("invalid check option {part:?}: expected key=value")))?;
        let list = |value: &str| -> (Vec<String>, bool) {
            let names: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
            let all = names.iter().any(|n| n.eq_ignore_ascii_case("all"));
            (names, all)
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "skip" => (check.skip, check.skip_all) = list(value),
            "experimental" => (check.experimental, check.experimental_all) = list(value),
            "error" => {
                check.error = parse_bool(value.trim()).ok_or_else(|| {
                    invalid(format!(
                        "invalid check error value {value:?}: expected a boolean"
                    ))
                })?
            }
            other => return Err(invalid(format!("invalid check option {other:?}"))),
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_go_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1.5h"), Ok(ms(5_400_000)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("2us"), Ok(Duration::from_micros(2)));
        assert_eq!(parse_go_duration("3µs"), Ok(Duration::from_micros(3)));
        for bad in ["", "5", "1d", "-1s", "s", "1..5s", "9999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chmod_octal_and_symbolic() {
        assert_eq!(parse_chmod("755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(parse_chmod("0644"), Ok(Chmod::Octal(0o644)));
        assert!(parse_chmod("17777").is_err());
        assert!(parse_chmod("u=rwZ").is_err());
        assert!(parse_chmod("u").is_err());
        assert!(parse_chmod("g=uw").is_err());
        let sym = parse_chmod("u=rwX,go=rX").expect("valid");
        assert_eq!(sym.apply(0o600, false), 0o644);
        assert_eq!(sym.apply(0o700, false), 0o755);
        assert_eq!(sym.apply(0o600, true), 0o755);
        assert_eq!(parse_chmod("+x").expect("valid").apply(0o644, false), 0o755);
        assert_eq!(
            parse_chmod("g=u,o=").expect("valid").apply(0o754, false),
            0o770
        );
        assert_eq!(
            parse_chmod("u+s,o-r").expect("valid").apply(0o755, false),
            0o4751
        );
    }

    #[test]
    fn mounts() {
        let m = parse_mount("type=cache,target=/c,sharing=locked,id=x,mode=0700,uid=1,gid=2")
            .expect("cache");
        assert_eq!(
            (m.kind, m.sharing, m.mode, m.uid, m.gid, m.readonly),
            (
                MountType::Cache,
                CacheSharing::Locked,
                Some(0o700),
                Some(1),
                Some(2),
                false
            )
        );
        let m = parse_mount("TYPE=Secret,ID=tok,Required").expect("secret");
        assert_eq!(
            (m.kind, m.required, m.readonly),
            (MountType::Secret, true, true)
        );
        let m = parse_mount("\"target=/a,b\",rw=true").expect("quoted field");
        assert_eq!((m.target.as_deref(), m.readonly), (Some("/a,b"), false));
        let m = parse_mount("type=tmpfs,target=/t,size=1.5GiB").expect("tmpfs");
        assert_eq!(m.size, Some(3 << 29));
        for bad in [
            "type=cache",
            "type=bind,target=/a,size=1m",
            "type=tmpfs,target=/t,from=x",
            "type=secret",
            "type=cache,target=/a,mode=8",
            "target",
            "type=cache,target=/a,\"unterminated",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn check_directive() {
        let check = parse_check_directive("skip=JSONArgsRecommended,StageNameCasing;error=true")
            .expect("valid");
        assert_eq!(check.skip, ["JSONArgsRecommended", "StageNameCasing"]);
        assert!(check.error && !check.skip_all);
        assert!(parse_check_directive("skip=all").expect("valid").skip_all);
        assert!(parse_check_directive("error=maybe").is_err());
        assert!(parse_check_directive("colour=red").is_err());
    }

    #[test]
    fn ports_signals_names() {
        assert_eq!(
            parse_port("8000-8010/UDP"),
            Ok(PortSpec {
                start: 8000,
                end: 8010,
                protocol: Protocol::Udp
            })
        );
        assert!(parse_port("65536").is_err());
        assert!(parse_port("80/").is_err());
        assert_eq!(parse_signal("SIGKILL"), Ok(9));
        assert_eq!(parse_signal("winch"), Ok(28));
        assert_eq!(parse_signal("RTMIN"), Ok(34));
        assert!(parse_signal("RTMAX-40").is_err());
        assert_eq!(
            parse_stage_name("Build.1_x-y").as_deref(),
            Ok("build.1_x-y")
        );
        assert!(parse_stage_name("-x").is_err());
        assert!(parse_stage_name("").is_err());
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("10"), Ok(10));
        assert!(parse_size("1x").is_err());
    }
}
