//! For every rule: Dockerfiles where it fires (rule id, line and column asserted) and where
//! it must not (including hadolint's known false positives).

use rbuild::context::Context;
use rbuild::lint::{Config, LabelType, Severity, lint, lint_in_context};

fn findings(text: &str, config: &Config) -> Vec<(String, u32, u32)> {
    lint(text, config)
        .findings
        .into_iter()
        .map(|f| (f.rule, f.line, f.column))
        .collect()
}

#[track_caller]
fn fires_with(config: &Config, rule: &str, line: u32, column: u32, text: &str) {
    let found = findings(text, config);
    assert!(
        found
            .iter()
            .any(|(r, l, c)| r == rule && *l == line && *c == column),
        "{rule} expected at {line}:{column} in:\n{text}\nfound: {found:?}"
    );
}

#[track_caller]
fn fires(rule: &str, line: u32, column: u32, text: &str) {
    fires_with(&everything(), rule, line, column, text);
}

#[track_caller]
fn silent_with(config: &Config, rule: &str, text: &str) {
    let found = findings(text, config);
    assert!(
        !found.iter().any(|(r, _, _)| r == rule),
        "{rule} not expected in:\n{text}\nfound: {found:?}"
    );
}

#[track_caller]
fn silent(rule: &str, text: &str) {
    silent_with(&everything(), rule, text);
}

/// Every rule reported, rules that are off by default included.
fn everything() -> Config {
    let mut c = Config::default();
    for r in ["DL1001", "DL3057", "InvalidDefinitionDescription"] {
        c.overrides.push((r.to_string(), Severity::Info));
    }
    c
}

#[test]
fn parse_errors_are_findings_and_the_rest_is_linted() {
    let text = "FROM debian:12\nFROBNICATE x\nFROM ubuntu\n";
    fires("DL1000", 2, 1, text);
    fires("DL3006", 3, 6, text);
}

#[test]
fn dl3000_workdir_relative_path() {
    fires("DL3000", 2, 9, "FROM debian:12\nWORKDIR app\n");
    silent(
        "DL3000",
        "FROM debian:12\nWORKDIR /app\nWORKDIR $HOME\nWORKDIR \"/x\"\nWORKDIR C:\\\\x\n",
    );
}

#[test]
fn dl3001_pointless_commands() {
    fires(
        "DL3001",
        2,
        16,
        "FROM debian:12\nRUN apt-get x; service nginx start\n",
    );
    silent("DL3001", "FROM debian:12\nRUN echo service top\n");
}

#[test]
fn dl3002_last_user_root() {
    fires("DL3002", 3, 1, "FROM debian:12\nUSER app\nUSER root\n");
    silent("DL3002", "FROM debian:12\nUSER root\nRUN x\nUSER 1000\n");
    // As hadolint: every stage whose last USER is root, not only the final one.
    fires(
        "DL3002",
        2,
        1,
        "FROM debian:12\nUSER root\nFROM debian:12\nUSER app\n",
    );
}

#[test]
fn dl3003_cd() {
    fires(
        "DL3003",
        2,
        16,
        "FROM debian:12\nRUN mkdir x && cd x && make\n",
    );
    silent("DL3003", "FROM debian:12\nWORKDIR /x\nRUN make; echo cd\n");
}

#[test]
fn dl3004_sudo() {
    fires("DL3004", 2, 5, "FROM debian:12\nRUN sudo apt-get update\n");
    silent("DL3004", "FROM debian:12\nRUN gosu app true\n");
}

#[test]
fn dl3006_untagged_image_with_variables_expanded() {
    fires("DL3006", 1, 6, "FROM debian\n");
    fires("DL3006", 2, 6, "ARG BASE=debian\nFROM ${BASE}\n");
    // hadolint false positive: a variable whose default carries a tag.
    silent("DL3006", "ARG BASE=debian:12\nFROM ${BASE}\n");
    silent("DL3006", "ARG TAG=12\nFROM debian:$TAG\n");
    silent(
        "DL3006",
        "FROM debian:12 AS build\nFROM build\nFROM scratch\nFROM x@sha256:abc\n",
    );
    // A variable with no known value: nothing can be said.
    silent("DL3006", "ARG BASE\nFROM $BASE\n");
    let mut with_arg = everything();
    with_arg.build_args.insert("BASE".into(), "debian".into());
    fires_with(&with_arg, "DL3006", 2, 6, "ARG BASE\nFROM $BASE\n");
}

#[test]
fn dl3007_latest() {
    fires("DL3007", 1, 6, "FROM debian:latest\n");
    silent("DL3007", "FROM debian:12\nFROM debian:latest@sha256:abc\n");
}

#[test]
fn dl3008_apt_pinning_with_package_lists_in_variables() {
    fires(
        "DL3008",
        2,
        31,
        "FROM debian:12\nRUN apt-get install -y curl=1 git\n",
    );
    silent(
        "DL3008",
        "FROM debian:12\nRUN apt-get install -y curl=1 ./x.deb foo/bookworm\n",
    );
    silent(
        "DL3008",
        "FROM debian:12\nRUN apt-get install -t bookworm-backports -y curl=1\n",
    );
    // A package list in a variable is understood.
    silent(
        "DL3008",
        "FROM debian:12\nARG PKGS=\"curl=1 git=2\"\nRUN apt-get install -y $PKGS\n",
    );
    fires(
        "DL3008",
        3,
        24,
        "FROM debian:12\nENV PKGS=\"curl=1 git\"\nRUN apt-get install -y $PKGS\n",
    );
}

#[test]
fn dl3009_apt_lists() {
    fires(
        "DL3009",
        2,
        1,
        "FROM debian:12\nRUN apt-get update && apt-get install -y x=1\n",
    );
    silent(
        "DL3009",
        "FROM debian:12\nRUN apt-get update && apt-get install -y x=1 && rm -rf /var/lib/apt/lists/*\n",
    );
    // Cache and tmpfs mounts satisfy the clean-up.
    silent(
        "DL3009",
        "FROM debian:12\nRUN --mount=type=cache,target=/var/lib/apt/lists apt-get update\n",
    );
    silent(
        "DL3009",
        "FROM debian:12\nRUN --mount=type=tmpfs,target=/var/lib/apt/lists apt-get update\n",
    );
    // An intermediate stage nobody builds on does not matter.
    silent(
        "DL3009",
        "FROM debian:12 AS a\nRUN apt-get update\nFROM debian:12\nRUN true\n",
    );
    fires(
        "DL3009",
        2,
        1,
        "FROM debian:12 AS a\nRUN apt-get update\nFROM a\nRUN true\n",
    );
}

#[test]
fn dl3010_archives() {
    fires(
        "DL3010",
        2,
        1,
        "FROM debian:12\nCOPY x.tar.gz /tmp/\nRUN tar -xzf /tmp/x.tar.gz\n",
    );
    silent(
        "DL3010",
        "FROM debian:12\nCOPY x.tar.gz /tmp/\nRUN echo /tmp/x.tar.gz\n",
    );
}

#[test]
fn dl3011_port_range() {
    fires("DL3011", 2, 8, "FROM debian:12\nEXPOSE 80000\n");
    silent("DL3011", "FROM debian:12\nEXPOSE 80 443/udp 8000-8010\n");
}

#[test]
fn dl3012_multiple_healthchecks() {
    fires(
        "DL3012",
        3,
        1,
        "FROM debian:12\nHEALTHCHECK CMD a\nHEALTHCHECK CMD b\n",
    );
    silent(
        "DL3012",
        "FROM debian:12\nHEALTHCHECK CMD a\nFROM debian:12\nHEALTHCHECK CMD b\n",
    );
}

#[test]
fn dl3013_pip_pinning() {
    fires("DL3013", 2, 5, "FROM python:3\nRUN pip install flask\n");
    silent(
        "DL3013",
        "FROM python:3\nRUN pip install flask==3 -r req.txt\n",
    );
    silent(
        "DL3013",
        "FROM python:3\nRUN pip install flask==3 ./pkg git+https://x/y@v1 x.whl\n",
    );
    fires(
        "DL3013",
        2,
        5,
        "FROM python:3\nRUN python3 -m pip install flask\n",
    );
}

#[test]
fn dl3014_apt_yes() {
    fires("DL3014", 2, 5, "FROM debian:12\nRUN apt-get install x=1\n");
    silent(
        "DL3014",
        "FROM debian:12\nRUN apt-get -qq install x=1 && apt-get --assume-yes install y=1\n",
    );
}

#[test]
fn dl3015_no_install_recommends() {
    fires(
        "DL3015",
        2,
        5,
        "FROM debian:12\nRUN apt-get install -y x=1\n",
    );
    silent(
        "DL3015",
        "FROM debian:12\nRUN apt-get install -y --no-install-recommends x=1\n",
    );
}

#[test]
fn dl3016_npm_pinning() {
    fires("DL3016", 2, 5, "FROM node:20\nRUN npm install express\n");
    silent(
        "DL3016",
        "FROM node:20\nRUN npm install express@4 @scope/x@1 ./local git+https://x#abc\n",
    );
    silent("DL3016", "FROM node:20\nRUN npm install\n");
}

#[test]
fn dl3018_apk_pinning() {
    fires(
        "DL3018",
        2,
        28,
        "FROM alpine:3\nRUN apk add --no-cache a=1 b\n",
    );
    silent(
        "DL3018",
        "FROM alpine:3\nRUN apk add --no-cache --virtual .deps a=1 b~2 x.apk\n",
    );
}

#[test]
fn dl3019_apk_no_cache() {
    fires("DL3019", 2, 5, "FROM alpine:3\nRUN apk add a=1\n");
    silent("DL3019", "FROM alpine:3\nRUN apk add --no-cache a=1\n");
    silent(
        "DL3019",
        "FROM alpine:3\nRUN --mount=type=cache,target=/var/cache/apk apk add a=1\n",
    );
}

#[test]
fn dl3020_add_for_files() {
    fires("DL3020", 2, 1, "FROM debian:12\nADD app /app\n");
    silent(
        "DL3020",
        "FROM debian:12\nADD x.tar.gz /app\nADD https://x/y /y\n",
    );
}

#[test]
fn dl3021_copy_many_to_dir() {
    fires("DL3021", 2, 1, "FROM debian:12\nCOPY a b /dest\n");
    silent("DL3021", "FROM debian:12\nCOPY a b /dest/\nCOPY a /dest\n");
}

#[test]
fn dl3022_dl3023_copy_from() {
    fires(
        "DL3022",
        2,
        1,
        "FROM debian:12\nCOPY --from=builder /a /a\n",
    );
    silent(
        "DL3022",
        "FROM debian:12 AS builder\nFROM debian:12\nCOPY --from=builder /a /a\nCOPY --from=0 /a /b\nCOPY --from=nginx:1 /a /c\n",
    );
    fires(
        "DL3023",
        2,
        1,
        "FROM debian:12 AS me\nCOPY --from=me /a /a\n",
    );
    silent(
        "DL3023",
        "FROM debian:12 AS a\nFROM debian:12 AS b\nCOPY --from=a /x /x\n",
    );
}

#[test]
fn dl3024_duplicate_stage_name() {
    fires(
        "DL3024",
        2,
        19,
        "FROM debian:12 AS a\nFROM debian:12 AS a\n",
    );
    silent("DL3024", "FROM debian:12 AS a\nFROM debian:12 AS b\n");
}

#[test]
fn dl3025_json_args() {
    fires("DL3025", 2, 1, "FROM debian:12\nCMD nginx -g daemon\n");
    fires("DL3025", 2, 1, "FROM debian:12\nENTRYPOINT run.sh\n");
    silent(
        "DL3025",
        "FROM debian:12\nCMD [\"nginx\"]\nENTRYPOINT [\"x\"]\n",
    );
}

#[test]
fn dl3026_trusted_registries() {
    let mut c = everything();
    c.trusted_registries.push("my.registry".into());
    fires_with(&c, "DL3026", 1, 6, "FROM other.registry/x:1\n");
    silent_with(&c, "DL3026", "FROM my.registry/x:1\nFROM scratch\n");
    silent("DL3026", "FROM other.registry/x:1\n");
}

#[test]
fn dl3027_apt() {
    fires("DL3027", 2, 5, "FROM debian:12\nRUN apt install x\n");
    silent("DL3027", "FROM debian:12\nRUN apt-get install -y x=1\n");
}

#[test]
fn dl3028_gem_pinning() {
    fires("DL3028", 2, 5, "FROM ruby:3\nRUN gem install rails\n");
    silent(
        "DL3028",
        "FROM ruby:3\nRUN gem install rails:7 && gem install -v 1 x\n",
    );
}

#[test]
fn dl3029_dl3065_platform() {
    fires("DL3029", 1, 6, "FROM --platform=linux/amd64 debian:12\n");
    fires(
        "FromPlatformFlagConstDisallowed",
        1,
        6,
        "FROM --platform=linux/amd64 debian:12\n",
    );
    fires(
        "DL3065",
        1,
        6,
        "FROM --platform=$TARGETPLATFORM debian:12\n",
    );
    silent(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform=$BUILDPLATFORM debian:12\n",
    );
    silent("DL3065", "FROM --platform=$BUILDPLATFORM debian:12\n");
}

#[test]
fn yum_rules() {
    fires(
        "DL3030",
        2,
        5,
        "FROM centos:7\nRUN yum install x-1 && yum clean all\n",
    );
    fires("DL3032", 2, 5, "FROM centos:7\nRUN yum install -y x-1\n");
    fires(
        "DL3033",
        2,
        5,
        "FROM centos:7\nRUN yum install -y x && yum clean all\n",
    );
    silent(
        "DL3030",
        "FROM centos:7\nRUN yum install -y x-1 && yum clean all\n",
    );
    silent(
        "DL3032",
        "FROM centos:7\nRUN yum install -y x-1 && yum clean all\n",
    );
    silent(
        "DL3032",
        "FROM centos:7\nRUN --mount=type=cache,target=/var/cache/yum yum install -y x-1\n",
    );
    silent(
        "DL3033",
        "FROM centos:7\nRUN yum install -y x-1 y.rpm && yum clean all\n",
    );
}

#[test]
fn zypper_rules() {
    fires(
        "DL3034",
        2,
        5,
        "FROM opensuse/leap:15\nRUN zypper install x=1 && zypper clean\n",
    );
    fires(
        "DL3035",
        2,
        5,
        "FROM opensuse/leap:15\nRUN zypper dist-upgrade\n",
    );
    fires(
        "DL3036",
        2,
        5,
        "FROM opensuse/leap:15\nRUN zypper install -y x=1\n",
    );
    fires(
        "DL3037",
        2,
        5,
        "FROM opensuse/leap:15\nRUN zypper install -y x && zypper clean\n",
    );
    silent(
        "DL3034",
        "FROM opensuse/leap:15\nRUN zypper install -y x=1 && zypper clean\n",
    );
    silent(
        "DL3036",
        "FROM opensuse/leap:15\nRUN zypper install -y x=1 && zypper clean\n",
    );
    silent(
        "DL3037",
        "FROM opensuse/leap:15\nRUN zypper install -y 'x>=1' y.rpm && zypper clean\n",
    );
}

#[test]
fn dnf_rules() {
    fires(
        "DL3038",
        2,
        5,
        "FROM fedora:40\nRUN dnf install x-1.0 && dnf clean all\n",
    );
    fires(
        "DL3040",
        2,
        5,
        "FROM fedora:40\nRUN microdnf install -y x-1.0\n",
    );
    fires(
        "DL3041",
        2,
        5,
        "FROM fedora:40\nRUN dnf install -y x && dnf clean all\n",
    );
    silent(
        "DL3038",
        "FROM fedora:40\nRUN dnf install -y x-1.0 && dnf clean all\n",
    );
    silent(
        "DL3040",
        "FROM fedora:40\nRUN --mount=type=cache,target=/var/cache/dnf dnf install -y x-1.0\n",
    );
    silent(
        "DL3041",
        "FROM fedora:40\nRUN dnf install -y x-1.0 && dnf clean all\n",
    );
}

#[test]
fn dl3042_pip_cache() {
    fires("DL3042", 2, 5, "FROM python:3\nRUN pip install x==1\n");
    silent(
        "DL3042",
        "FROM python:3\nRUN pip install --no-cache-dir x==1\n",
    );
    silent(
        "DL3042",
        "FROM python:3\nENV PIP_NO_CACHE_DIR=1\nRUN pip install x==1\n",
    );
    silent(
        "DL3042",
        "FROM python:3\nRUN --mount=type=cache,target=/root/.cache/pip pip install x==1\n",
    );
    silent("DL3042", "FROM python:3\nRUN pipx install x==1\n");
}

#[test]
fn dl3043_onbuild() {
    fires("DL3043", 2, 1, "FROM debian:12\nONBUILD FROM debian:12\n");
    silent("DL3043", "FROM debian:12\nONBUILD RUN true\n");
}

#[test]
fn dl3044_env_self_reference() {
    fires("DL3044", 2, 1, "FROM debian:12\nENV A=1 B=$A\n");
    silent(
        "DL3044",
        "FROM debian:12\nENV A=1\nENV B=$A C=${A}x\nENV PATH=$PATH:/x\n",
    );
}

#[test]
fn dl3045_copy_relative_without_workdir() {
    fires("DL3045", 2, 1, "FROM debian:12\nCOPY a dest/\n");
    silent(
        "DL3045",
        "FROM debian:12\nWORKDIR /w\nCOPY a dest/\nCOPY a /abs\n",
    );
    silent(
        "DL3045",
        "FROM debian:12 AS a\nWORKDIR /w\nFROM a\nCOPY x rel/\n",
    );
}

#[test]
fn dl3046_useradd_high_uid() {
    fires(
        "DL3046",
        2,
        5,
        "FROM debian:12\nRUN useradd -u 123456 app\n",
    );
    silent(
        "DL3046",
        "FROM debian:12\nRUN useradd -l -u 123456 app && useradd -u 1000 b\n",
    );
}

#[test]
fn dl3047_wget_progress() {
    fires("DL3047", 2, 5, "FROM debian:12\nRUN wget http://x/y\n");
    silent(
        "DL3047",
        "FROM debian:12\nRUN wget -q http://x && wget --progress=dot:giga u && wget -nv u\n",
    );
    // `-O-` names the output document, not a log: the progress bar is still shown.
    fires("DL3047", 2, 5, "FROM debian:12\nRUN wget -O- u\n");
}

#[test]
fn label_rules() {
    fires("DL3048", 2, 1, "FROM debian:12\nLABEL Invalid_Key=x\n");
    silent(
        "DL3048",
        "FROM debian:12\nLABEL org.opencontainers.image.title=x\n",
    );
    let mut c = everything();
    c.label_schema.insert("maintainer".into(), LabelType::Email);
    c.label_schema.insert("url".into(), LabelType::Url);
    c.label_schema.insert("created".into(), LabelType::Rfc3339);
    c.label_schema.insert("license".into(), LabelType::Spdx);
    c.label_schema.insert("commit".into(), LabelType::GitHash);
    c.label_schema.insert("version".into(), LabelType::SemVer);
    c.strict_labels = true;
    fires_with(&c, "DL3049", 1, 1, "FROM debian:12\nLABEL url=https://x\n");
    fires_with(&c, "DL3050", 2, 1, "FROM debian:12\nLABEL other=x\n");
    fires_with(&c, "DL3051", 2, 1, "FROM debian:12\nLABEL url=\"\"\n");
    fires_with(&c, "DL3052", 2, 1, "FROM debian:12\nLABEL url=notaurl\n");
    fires_with(
        &c,
        "DL3053",
        2,
        1,
        "FROM debian:12\nLABEL created=yesterday\n",
    );
    fires_with(
        &c,
        "DL3054",
        2,
        1,
        "FROM debian:12\nLABEL license=\"not a license\"\n",
    );
    fires_with(&c, "DL3055", 2, 1, "FROM debian:12\nLABEL commit=xyz\n");
    fires_with(&c, "DL3056", 2, 1, "FROM debian:12\nLABEL version=1.2\n");
    fires_with(
        &c,
        "DL3058",
        2,
        1,
        "FROM debian:12\nLABEL maintainer=nobody\n",
    );
    let good = "FROM debian:12\nLABEL maintainer=a@b.org url=https://x created=2024-01-02T03:04:05Z license=MIT commit=abcdef0 version=1.2.3\n";
    for rule in [
        "DL3049", "DL3050", "DL3051", "DL3052", "DL3053", "DL3054", "DL3055", "DL3056", "DL3058",
    ] {
        silent_with(&c, rule, good);
    }
}

#[test]
fn dl3057_healthcheck_missing() {
    fires("DL3057", 1, 1, "FROM debian:12\n");
    silent("DL3057", "FROM debian:12\nHEALTHCHECK CMD x\n");
    silent_with(&Config::default(), "DL3057", "FROM debian:12\n");
}

#[test]
fn dl3059_consecutive_runs() {
    fires("DL3059", 3, 1, "FROM debian:12\nRUN a\nRUN b\n");
    silent("DL3059", "FROM debian:12\nRUN a\nENV X=1\nRUN b\n");
    silent("DL3059", "FROM debian:12\nRUN a && b && c\nRUN d\n");
    silent(
        "DL3059",
        "FROM debian:12\nRUN --mount=type=cache,target=/x a\nRUN b\n",
    );
}

#[test]
fn dl3060_yarn_cache() {
    fires("DL3060", 2, 5, "FROM node:20\nRUN yarn install\n");
    silent(
        "DL3060",
        "FROM node:20\nRUN yarn install && yarn cache clean\n",
    );
    silent(
        "DL3060",
        "FROM node:20\nRUN --mount=type=cache,target=/usr/local/share/.cache/yarn yarn install\n",
    );
}

#[test]
fn dl3061_order() {
    fires("DL3061", 1, 1, "LABEL a=b\nFROM debian:12\n");
    silent("DL3061", "# c\nARG X=1\nFROM debian:12\n");
}

#[test]
fn dl3062_go_install() {
    fires(
        "DL3062",
        2,
        5,
        "FROM golang:1\nRUN go install example.com/x\n",
    );
    silent(
        "DL3062",
        "FROM golang:1\nRUN go install example.com/x@v1.2.3 && go install ./...\n",
    );
}

#[test]
fn dl3063_reserved_stage_name() {
    fires("DL3063", 1, 19, "FROM debian:12 AS scratch\n");
    silent("DL3063", "FROM debian:12 AS build\n");
}

#[test]
fn dl3064_secrets() {
    fires("DL3064", 2, 1, "FROM debian:12\nARG GITHUB_TOKEN\n");
    fires("DL3064", 2, 1, "FROM debian:12\nENV DB_PASSWORD=x\n");
    silent("DL3064", "FROM debian:12\nARG VERSION=1\nENV PATH=/x\n");
}

#[test]
fn dl3066_user_id() {
    fires("DL3066", 2, 1, "FROM debian:12\nUSER app\n");
    silent("DL3066", "FROM debian:12\nUSER 1000:1000\n");
    // Expanded with the variables in scope.
    silent("DL3066", "FROM debian:12\nARG UID=1000\nUSER $UID\n");
}

#[test]
fn dl3067_copy_whole_filesystem() {
    fires(
        "DL3067",
        3,
        1,
        "FROM debian:12 AS a\nFROM scratch\nCOPY --from=a / /\n",
    );
    silent(
        "DL3067",
        "FROM debian:12 AS a\nFROM scratch\nCOPY --from=a /bin /bin\n",
    );
}

#[test]
fn dl4000_maintainer() {
    fires("DL4000", 2, 1, "FROM debian:12\nMAINTAINER me\n");
    silent("DL4000", "FROM debian:12\nLABEL maintainer=me\n");
}

#[test]
fn dl4001_curl_and_wget() {
    fires(
        "DL4001",
        3,
        1,
        "FROM debian:12\nRUN curl -o x u\nRUN wget -q u\n",
    );
    silent(
        "DL4001",
        "FROM debian:12\nRUN curl -o x u\nRUN curl -o y u\n",
    );
}

#[test]
fn dl4003_dl4004_multiple_cmd_entrypoint() {
    fires("DL4003", 3, 1, "FROM debian:12\nCMD [\"a\"]\nCMD [\"b\"]\n");
    fires(
        "DL4004",
        3,
        1,
        "FROM debian:12\nENTRYPOINT [\"a\"]\nENTRYPOINT [\"b\"]\n",
    );
    silent(
        "DL4003",
        "FROM debian:12\nCMD [\"a\"]\nFROM debian:12\nCMD [\"b\"]\n",
    );
}

#[test]
fn dl4005_ln_bin_sh() {
    fires(
        "DL4005",
        2,
        5,
        "FROM debian:12\nRUN ln -sf /bin/bash /bin/sh\n",
    );
    silent("DL4005", "FROM debian:12\nSHELL [\"/bin/bash\", \"-c\"]\n");
}

#[test]
fn dl4006_pipefail() {
    fires("DL4006", 2, 1, "FROM debian:12\nRUN curl u | tar x\n");
    fires(
        "DL4006",
        2,
        1,
        "FROM debian:12\nRUN x=\"$(curl u | sha256sum)\"\n",
    );
    silent(
        "DL4006",
        "FROM debian:12\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nRUN curl u | tar x\n",
    );
    silent("DL4006", "FROM debian:12\nRUN curl u || true\n");
}

#[test]
fn buildkit_casing_checks() {
    fires("StageNameCasing", 1, 19, "FROM debian:12 AS Build\n");
    fires("FromAsCasing", 1, 16, "FROM debian:12 as build\n");
    silent(
        "FromAsCasing",
        "FROM debian:12 AS build\nfrom debian:12 as x\n",
    );
    fires(
        "ConsistentInstructionCasing",
        3,
        1,
        "FROM debian:12\nRUN a\nrun b\n",
    );
    silent("ConsistentInstructionCasing", "FROM debian:12\nRUN a\n");
}

#[test]
fn buildkit_no_empty_continuation() {
    fires(
        "NoEmptyContinuation",
        3,
        1,
        "FROM debian:12\nRUN a \\\n\n  b\n",
    );
}

#[test]
fn buildkit_legacy_key_value() {
    fires("LegacyKeyValueFormat", 2, 1, "FROM debian:12\nENV A 1\n");
    silent(
        "LegacyKeyValueFormat",
        "FROM debian:12\nENV A=1\nLABEL a=b\n",
    );
}

#[test]
fn buildkit_undefined_args_and_vars() {
    fires("UndefinedArgInFrom", 1, 6, "FROM debian:$TAG\n");
    silent(
        "UndefinedArgInFrom",
        "ARG TAG=12\nFROM debian:$TAG\nFROM --platform=$BUILDPLATFORM debian:12\n",
    );
    fires(
        "InvalidDefaultArgInFrom",
        2,
        6,
        "ARG TAG\nFROM debian:$TAG\n",
    );
    silent("InvalidDefaultArgInFrom", "ARG TAG=12\nFROM debian:$TAG\n");
    fires("UndefinedVar", 2, 6, "FROM scratch\nCOPY $SRC /x\n");
    silent("UndefinedVar", "FROM scratch\nARG SRC\nCOPY $SRC /x\n");
    // The base image may define it: nothing is said.
    silent("UndefinedVar", "FROM debian:12\nENV P=$PATH:/x\n");
    // Every stage has a PATH; a stage from a stage sees its ENV and ARGs.
    silent("UndefinedVar", "FROM scratch\nENV P=$PATH:/x\n");
    let staged =
        "FROM scratch AS base\nENV HOME_DIR=/h\nARG V=1\nFROM base\nWORKDIR $HOME_DIR/$V/$NOPE\n";
    fires("UndefinedVar", 5, 9, staged);
    let found = findings(staged, &everything());
    assert_eq!(
        found.iter().filter(|(r, _, _)| r == "UndefinedVar").count(),
        1,
        "{found:?}"
    );
    // A stage from an image whose environment is unknown stays unknown down the line.
    silent(
        "UndefinedVar",
        "FROM debian:12 AS base\nFROM base\nENV P=$HOME\n",
    );
}

#[test]
fn buildkit_invalid_definition_description() {
    // Experimental, as in BuildKit: off by default, on through `experimental=` or a severity.
    let text = "FROM scratch\n# the version\nARG VERSION=1\n";
    silent_with(&Config::default(), "InvalidDefinitionDescription", text);
    fires("InvalidDefinitionDescription", 3, 1, text);
    let directive = format!("# check=experimental=InvalidDefinitionDescription\n{text}");
    fires_with(
        &Config::default(),
        "InvalidDefinitionDescription",
        4,
        1,
        &directive,
    );
    fires(
        "InvalidDefinitionDescription",
        2,
        1,
        "# builder stage\nFROM scratch AS build\n",
    );
    // The first word names what is described (a stage by its lowercased name).
    silent(
        "InvalidDefinitionDescription",
        "# build stage\nFROM scratch AS Build\n# VERSION of the app\nARG VERSION=1\n# B too\nARG A B\n",
    );
    // A blank line makes a comment no description; directives are no comments.
    silent(
        "InvalidDefinitionDescription",
        "# syntax=docker/dockerfile:1\nARG BASE=scratch\nFROM $BASE\n# unrelated\n\nARG X\nFROM scratch\n",
    );
}

#[test]
fn buildkit_copy_ignored_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, text) in [
        (".dockerignore", "secret.txt\nbuild/\n!build/keep\n"),
        ("secret.txt", "s"),
        ("app.txt", "a"),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{e}"));
    }
    let context = Context::open(dir.path(), None).unwrap_or_else(|e| panic!("{e}"));
    let text = "FROM scratch\nARG F=secret.txt\nCOPY app.txt secret.txt /x/\nADD $F build/out build/keep /y/\nCOPY --from=other secret.txt /z\nCOPY *.txt /w/\n";
    let report = lint_in_context(text, &everything(), Some(&context));
    let found: Vec<(u32, u32, &str)> = report
        .findings
        .iter()
        .filter(|f| f.rule == "CopyIgnoredFile")
        .map(|f| (f.line, f.column, f.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                3,
                14,
                "Attempting to Copy file \"secret.txt\" that is excluded by .dockerignore"
            ),
            (
                4,
                5,
                "Attempting to Add file \"secret.txt\" that is excluded by .dockerignore"
            ),
            (
                4,
                8,
                "Attempting to Add file \"build/out\" that is excluded by .dockerignore"
            ),
        ]
    );
    // Without a context, or with one that ignores nothing, nothing is said.
    silent("CopyIgnoredFile", text);
    let plain = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let context = Context::open(plain.path(), None).unwrap_or_else(|e| panic!("{e}"));
    let report = lint_in_context(text, &everything(), Some(&context));
    assert!(!report.findings.iter().any(|f| f.rule == "CopyIgnoredFile"));
}

#[test]
fn buildkit_expose_checks() {
    fires("ExposeProtoCasing", 2, 8, "FROM debian:12\nEXPOSE 80/TCP\n");
    fires(
        "ExposeInvalidFormat",
        2,
        8,
        "FROM debian:12\nEXPOSE 0.0.0.0:80:80\n",
    );
    silent("ExposeInvalidFormat", "FROM debian:12\nEXPOSE 80/tcp\n");
}

#[test]
fn dl_and_buildkit_names_are_one_finding() {
    let report = lint("FROM debian:12\nMAINTAINER me\n", &Config::default());
    let found: Vec<_> = report.findings.iter().filter(|f| f.line == 2).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule, "DL4000");
    assert_eq!(found[0].buildkit, Some("MaintainerDeprecated"));
    let mut c = Config::default();
    c.ignored.push("MaintainerDeprecated".into());
    silent_with(&c, "DL4000", "FROM debian:12\nMAINTAINER me\n");
}

#[test]
fn heredoc_scripts_are_linted() {
    fires("DL3003", 3, 1, "FROM debian:12\nRUN <<EOF\ncd /x\nEOF\n");
    silent(
        "DL3003",
        "FROM debian:12\nRUN <<EOF\n#!/usr/bin/env python3\ncd = 1\nEOF\n",
    );
    fires(
        "DL3008",
        3,
        20,
        "FROM debian:12\nRUN bash <<EOF\napt-get install -y x\nEOF\n",
    );
}

#[test]
fn dl1001_inline_pragmas_when_enabled() {
    let text = "FROM debian:12\n  # hadolint ignore=DL3003\nRUN cd /x\n";
    fires("DL1001", 2, 1, text);
    silent_with(&Config::default(), "DL1001", text);
    silent("DL1001", "FROM debian:12\n# a plain comment\nRUN true\n");
}

#[test]
fn quiet_where_the_file_is_right() {
    silent(
        "DL1000",
        "FROM debian:12\nRUN <<EOF\necho hi\nEOF\nCOPY --link --chmod=644 a /a\n",
    );
    silent("DL3029", "FROM debian:12 AS build\nFROM build\n");
    silent("DL3035", "FROM opensuse/leap:15.6\nRUN zypper patch -y\n");
    silent(
        "DL4004",
        "FROM debian:12\nENTRYPOINT [\"/a\"]\nFROM debian:12\nENTRYPOINT [\"/b\"]\n",
    );
    silent(
        "StageNameCasing",
        "FROM debian:12 AS build-2\nFROM build-2\n",
    );
    silent(
        "NoEmptyContinuation",
        "FROM debian:12\nRUN echo a \\\n# a comment line is no empty line\n    && echo b\n",
    );
    silent("ExposeProtoCasing", "FROM debian:12\nEXPOSE 80/udp 443\n");
}
