//! `$RETZ_X` / `${RETZ_X}` (and `$PORTn` / `${PORTn}`) substitution, done by the executor
//! itself, never by a shell.
//!
//! Two pure functions:
//! - [`substitute_literal`] for env values: each known `$RETZ_X` is replaced by its value
//!   verbatim. Nothing is evaluated; `$(…)` and backquotes in values stay as they are.
//! - [`substitute_command`] for the command that later runs under `sh -c`: each known
//!   variable is replaced by its value *quoted for the shell context it sits in*, so the
//!   value reaches the program literally whatever it holds. The command is scanned with a
//!   small model of POSIX quoting: single and double quotes, backslash escapes, `$(…)`,
//!   backquotes and `#` comments. Values made only of `[A-Za-z0-9_@%+=:,./-]` (numbers,
//!   CPU lists, ordinary paths) are inserted as they are, which is literal in every
//!   context, including arithmetic `$((…))`. Here-document bodies are not modelled; use
//!   only such plain values there.
//!
//! # The rule (the same in both)
//!
//! The *known* names are the task's variables present in the variable map: names starting
//! with `RETZ_` (`RETZ_CPU`, `RETZ_MEM`, `RETZ_GPU`, `RETZ_CPUSET`, `RETZ_NUMA_NODES`,
//! `RETZ_PVNAME`, `RETZ_JOB_ID`, `RETZ_TASK_ID`, `RETZ_PORTS`) and `PORT` followed by
//! digits (the granted ports). At each `$` that is not escaped:
//! - `${NAME}` is replaced when `NAME` is exactly a known name; anything else in braces
//!   (`${RETZ_CPU:-1}`, `${RETZ_MEMm}`, `${HOME}`) stays as written;
//! - `$` followed by characters: the **longest known name that is a prefix of the
//!   characters after `$`** is replaced, and the characters after it stay: `-Xmx$RETZ_MEMm`
//!   is `-Xmx` + `$RETZ_MEM` + `m` = `-Xmx512m`, `$RETZ_CPUS` is `$RETZ_CPU` + `S`, while
//!   `$RETZ_CPUSET` is `$RETZ_CPUSET` (known and longer than `RETZ_CPU`). A name never ends
//!   inside a number: a match whose last character is a digit followed by another digit
//!   is no match, so `$PORT10` is `PORT10` (or stays as written when there is no
//!   eleventh port), never `PORT1` followed by `0`;
//! - when no known name is a prefix (`$RETZ_FOO`, `$HOME`, `$PORT9` without a tenth
//!   port), the text stays as written and, in the command, the shell sees it.
//!
//! This is what the original Retz did and a bit more: its executor (0.0.26 and earlier,
//! `EnvBuilder`) replaced the literal texts `$RETZ_CPU`, `$RETZ_MEM` and `$RETZ_PVNAME`
//! wherever they appeared in `-E` values, by plain string replacement with no end of
//! name, so `-Xmx$RETZ_MEMm` became `-Xmx512m`; the command itself was left to the shell
//! (where `$RETZ_MEMm` is an unset variable). Here the same replacement is done in the
//! command too, for every task variable, and the longest known name wins where the
//! original, knowing only three names, never had to choose (it would have turned
//! `$RETZ_CPUSET` into `4SET`).

use std::collections::BTreeMap;

/// Replaces known `$RETZ_X` / `${RETZ_X}` in `input` by their values, verbatim.
pub fn substitute_literal(input: &str, vars: &BTreeMap<String, String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut flushed = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$'
            && let Some((len, value)) = match_var(input, i, vars)
        {
            out.push_str(&input[flushed..i]);
            out.push_str(value);
            i += len;
            flushed = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&input[flushed..]);
    out
}

/// Replaces known `$RETZ_X` / `${RETZ_X}` in a shell command by their values, each quoted
/// for its context so that the shell sees the value literally.
pub fn substitute_command(command: &str, vars: &BTreeMap<String, String>) -> String {
    let bytes = command.as_bytes();
    let mut out = String::with_capacity(command.len() + 16);
    let mut flushed = 0;
    let mut i = 0;
    let mut stack = vec![Frame {
        kind: FrameKind::Top,
        quote: Quote::None,
    }];
    while i < bytes.len() {
        let b = bytes[i];
        let depth = stack.len();
        let top = &mut stack[depth - 1];
        match top.quote {
            Quote::Single => {
                if b == b'\'' {
                    top.quote = Quote::None;
                } else if b == b'$'
                    && let Some((len, value)) = match_var(command, i, vars)
                {
                    out.push_str(&command[flushed..i]);
                    out.push_str(&encode(value, &stack));
                    i += len;
                    flushed = i;
                    continue;
                }
                i += 1;
            }
            Quote::Double | Quote::None => {
                let double = top.quote == Quote::Double;
                match b {
                    b'\\' => i += 1 + char_len_at(command, i + 1),
                    b'"' => {
                        top.quote = if double { Quote::None } else { Quote::Double };
                        i += 1;
                    }
                    b'\'' if !double => {
                        top.quote = Quote::Single;
                        i += 1;
                    }
                    b'`' => {
                        if !double && top.kind == FrameKind::Backquote {
                            stack.pop();
                        } else {
                            stack.push(Frame {
                                kind: FrameKind::Backquote,
                                quote: Quote::None,
                            });
                        }
                        i += 1;
                    }
                    b'$' => {
                        if bytes.get(i + 1) == Some(&b'(') {
                            stack.push(Frame {
                                kind: FrameKind::Paren(0),
                                quote: Quote::None,
                            });
                            i += 2;
                        } else if let Some((len, value)) = match_var(command, i, vars) {
                            out.push_str(&command[flushed..i]);
                            out.push_str(&encode(value, &stack));
                            i += len;
                            flushed = i;
                        } else {
                            i += 1;
                        }
                    }
                    b'(' if !double => {
                        if let FrameKind::Paren(d) = &mut top.kind {
                            *d += 1;
                        }
                        i += 1;
                    }
                    b')' if !double => {
                        match &mut top.kind {
                            FrameKind::Paren(0) => {
                                stack.pop();
                            }
                            FrameKind::Paren(d) => *d -= 1,
                            _ => {}
                        }
                        i += 1;
                    }
                    b'#' if !double && starts_word(bytes, i) => {
                        // A comment runs to the end of the line; quotes in it mean nothing.
                        while i < bytes.len() && bytes[i] != b'\n' {
                            i += 1;
                        }
                    }
                    _ => i += 1,
                }
            }
        }
    }
    out.push_str(&command[flushed..]);
    out
}

/// Quotes `value` as one shell word: unchanged when it is non-empty and made only of
/// `[A-Za-z0-9_@%+=:,./-]`, else in single quotes (with `'` written as `'\''`).
pub fn shell_quote(value: &str) -> String {
    if is_plain(value) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    /// The command itself.
    Top,
    /// Inside `$(`…`)`, with the count of unclosed `(` in it.
    Paren(u32),
    /// Inside `` ` ``…`` ` ``.
    Backquote,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: FrameKind,
    quote: Quote,
}

/// The text to insert for `value` at the current point of the scan.
fn encode(value: &str, stack: &[Frame]) -> String {
    if is_plain(value) {
        return value.to_owned();
    }
    let quote = stack.last().map_or(Quote::None, |f| f.quote);
    let mut text = match quote {
        Quote::None => shell_quote(value),
        Quote::Single => value.replace('\'', r"'\''"),
        Quote::Double => escape(value, b"$`\"\\"),
    };
    // Each enclosing backquote strips one level of `\` before `\`, `` ` `` and `$`.
    for frame in stack.iter().rev() {
        if frame.kind == FrameKind::Backquote {
            text = escape(&text, b"\\`$");
        }
    }
    text
}

fn escape(value: &str, special: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if c.is_ascii() && special.contains(&(c as u8)) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// At `input[at] == '$'`: the length of a known `$NAME` / `${NAME}` and its value (the
/// module's rule: braces take an exact name, otherwise the longest known prefix wins).
fn match_var<'v>(
    input: &str,
    at: usize,
    vars: &'v BTreeMap<String, String>,
) -> Option<(usize, &'v str)> {
    let rest = &input.as_bytes()[at + 1..];
    if let Some(body) = rest.strip_prefix(b"{") {
        let name_len = body.iter().take_while(|&&b| is_name_byte(b)).count();
        // Name bytes are ASCII, so this slice is on char boundaries.
        let name = std::str::from_utf8(&body[..name_len]).ok()?;
        if !is_task_var(name) || body.get(name_len) != Some(&b'}') {
            return None;
        }
        let value = vars.get(name)?;
        return Some((name_len + 3, value.as_str()));
    }
    vars.iter()
        .filter(|(name, _)| {
            let n = name.as_bytes();
            is_task_var(name)
                && rest.starts_with(n)
                && !(n.last().is_some_and(u8::is_ascii_digit)
                    && rest.get(n.len()).is_some_and(u8::is_ascii_digit))
        })
        .max_by_key(|(name, _)| name.len())
        .map(|(name, value)| (1 + name.len(), value.as_str()))
}

/// `RETZ_*`, or `PORT` followed by one or more digits.
fn is_task_var(name: &str) -> bool {
    name.starts_with("RETZ_")
        || name
            .strip_prefix("PORT")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn char_len_at(s: &str, at: usize) -> usize {
    s.get(at..)
        .and_then(|rest| rest.chars().next())
        .map_or(0, char::len_utf8)
}

fn starts_word(bytes: &[u8], at: usize) -> bool {
    at == 0 || b" \t\n;&|()<>".contains(&bytes[at - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn literal_substitution() {
        let v = vars(&[("RETZ_CPU", "4"), ("RETZ_PVNAME", "/s/app/x")]);
        assert_eq!(
            substitute_literal("--threads=$RETZ_CPU dir=${RETZ_PVNAME}/bin", &v),
            "--threads=4 dir=/s/app/x/bin"
        );
        assert_eq!(
            substitute_literal("$RETZ_FOO ${RETZ_CPU:-1} ${RETZ_CPUS} $HOME $", &v),
            "$RETZ_FOO ${RETZ_CPU:-1} ${RETZ_CPUS} $HOME $"
        );
        assert_eq!(substitute_literal("${RETZ_CPU", &v), "${RETZ_CPU");
        assert_eq!(substitute_literal("é$RETZ_CPUé", &v), "é4é");
        let evil = vars(&[("RETZ_TASK_ID", "$(rm -rf /) `id`")]);
        assert_eq!(
            substitute_literal("id=$RETZ_TASK_ID", &evil),
            "id=$(rm -rf /) `id`"
        );
        // A value containing a variable reference is not substituted again.
        let rec = vars(&[("RETZ_A", "$RETZ_B"), ("RETZ_B", "x")]);
        assert_eq!(substitute_literal("$RETZ_A", &rec), "$RETZ_B");
    }

    #[test]
    fn the_longest_known_name_after_the_dollar_wins() {
        let v = vars(&[
            ("RETZ_CPU", "4"),
            ("RETZ_CPUSET", "0-3"),
            ("RETZ_MEM", "512"),
            ("RETZ_PVNAME", "/s/app/x"),
        ]);
        assert_eq!(substitute_literal("-Xmx$RETZ_MEMm", &v), "-Xmx512m");
        assert_eq!(substitute_literal("-Xmx${RETZ_MEM}m", &v), "-Xmx512m");
        assert_eq!(substitute_literal("${RETZ_MEMm}", &v), "${RETZ_MEMm}");
        assert_eq!(substitute_literal("$RETZ_CPUSET", &v), "0-3");
        assert_eq!(substitute_literal("$RETZ_CPUS $RETZ_CPU_N", &v), "4S 4_N");
        assert_eq!(substitute_literal("$RETZ_PVNAME/bin", &v), "/s/app/x/bin");
        assert_eq!(substitute_literal("$RETZ_ME $RETZ_", &v), "$RETZ_ME $RETZ_");
        assert_eq!(
            substitute_command("java -Xmx$RETZ_MEMm -cp $RETZ_PVNAMElib", &v),
            "java -Xmx512m -cp /s/app/xlib"
        );
        assert_eq!(
            substitute_command("echo \"-Xmx$RETZ_MEMm\" '$RETZ_CPUSETx'", &v),
            "echo \"-Xmx512m\" '0-3x'"
        );
        // Only task variables are known, even when the map holds others.
        let home = vars(&[("HOME", "/root"), ("RETZ_CPU", "4")]);
        assert_eq!(substitute_literal("$HOMEx $RETZ_CPUx", &home), "$HOMEx 4x");
    }

    #[test]
    fn port_variables_are_task_variables() {
        let v = vars(&[("PORT0", "31000"), ("PORT1", "31001"), ("PORTX", "no")]);
        assert_eq!(
            substitute_literal(
                "$PORT0,${PORT1} $PORT10 $PORT2 $PORT $PORTX ${PORT0:-1}",
                &v
            ),
            "31000,31001 $PORT10 $PORT2 $PORT $PORTX ${PORT0:-1}"
        );
        assert_eq!(
            substitute_command("nc -l '$PORT0' \"${PORT1}\" $PORT01", &v),
            "nc -l '31000' \"31001\" $PORT01"
        );
        assert!(is_task_var("PORT0") && is_task_var("PORT999") && is_task_var("RETZ_CPU"));
        for not in ["PORT", "PORTX", "PORT1a", "port0", "HOME", "RETZ"] {
            assert!(!is_task_var(not), "{not}");
        }
        // Only names of the map are replaced, whatever their shape.
        let home = vars(&[("HOME", "/root")]);
        assert_eq!(substitute_literal("$HOME", &home), "$HOME");
    }

    #[test]
    fn command_substitution_quotes_by_context() {
        let v = vars(&[("RETZ_CPU", "4"), ("RETZ_X", "a'b c")]);
        assert_eq!(
            substitute_command("m3bp -t $RETZ_CPU", &v),
            "m3bp -t 4",
            "plain values go in as they are"
        );
        assert_eq!(substitute_command("echo $RETZ_X", &v), r"echo 'a'\''b c'");
        assert_eq!(substitute_command("echo \"$RETZ_X\"", &v), "echo \"a'b c\"");
        assert_eq!(substitute_command("echo '$RETZ_X'", &v), r"echo 'a'\''b c'");
        assert_eq!(
            substitute_command("echo $(($RETZ_CPU*2))", &v),
            "echo $((4*2))"
        );
        assert_eq!(
            substitute_command(r"echo \$RETZ_CPU # $RETZ_CPU '", &v),
            r"echo \$RETZ_CPU # $RETZ_CPU '"
        );
        assert_eq!(substitute_command("$RETZ_NOPE", &v), "$RETZ_NOPE");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("0-3,8"), "0-3,8");
    }

    /// Runs `sh -c script` with an empty environment and returns stdout.
    fn sh(script: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "sh failed on {script:?}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Command templates covering each quoting context; `V` marks the variable and the
    /// second string is the expected output given the value.
    const TEMPLATES: &[(&str, &str)] = &[
        ("printf '%s' $RETZ_V", "V"),
        ("printf '%s' ${RETZ_V}", "V"),
        ("printf '%s' \"$RETZ_V\"", "V"),
        ("printf '%s' '$RETZ_V'", "V"),
        ("printf '%s' x$RETZ_V\"y$RETZ_V\"'z${RETZ_V}'", "xVyVzV"),
        ("printf '%s' \"$(printf '%s.' $RETZ_V)\"", "V."),
        ("printf '%s' \"$(printf '%s.' \"$RETZ_V\")\"", "V."),
        ("printf '%s' \"`printf '%s.' $RETZ_V`\"", "V."),
        ("# it's a comment $RETZ_V\nprintf '%s' \"$RETZ_V\"", "V"),
        ("x=$RETZ_V; printf '%s' \"$x\"", "V"),
    ];

    #[test]
    fn shell_sees_values_literally() {
        let nasty = [
            "$(touch /tmp/retz-subst-pwned)",
            "`touch /tmp/retz-subst-pwned`",
            "a'b\"c\\d$e`f",
            "*",
            "~",
            " lead and trail ",
            "line\nbreak",
            "",
            "\\",
            "'",
            "\"",
            "$RETZ_V",
            "-n",
            "日本語 $(x)",
        ];
        for value in nasty {
            for (template, expected) in TEMPLATES {
                let cmd = substitute_command(template, &vars(&[("RETZ_V", value)]));
                assert_eq!(
                    sh(&cmd),
                    expected.replace('V', value),
                    "template {template:?} value {value:?} gave {cmd:?}"
                );
            }
        }
        assert!(!std::path::Path::new("/tmp/retz-subst-pwned").exists());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn prop_shell_gets_the_value(value in "[^\u{0}]{0,24}", which in 0..TEMPLATES.len()) {
            let (template, expected) = TEMPLATES[which];
            let cmd = substitute_command(template, &vars(&[("RETZ_V", &value)]));
            prop_assert_eq!(sh(&cmd), expected.replace('V', &value), "{:?}", cmd);
        }

        #[test]
        fn prop_literal_is_plain_replacement(
            prefix in "[^$]{0,10}", value in "\\PC{0,16}", suffix in "[^A-Za-z0-9_]{0,10}"
        ) {
            let input = format!("{prefix}$RETZ_V{suffix}");
            let out = substitute_literal(&input, &vars(&[("RETZ_V", &value)]));
            prop_assert_eq!(out, format!("{prefix}{value}{suffix}"));
        }

        #[test]
        fn prop_a_known_name_then_any_name_chars(
            value in "[A-Za-z0-9./ ]{0,12}", suffix in "[a-z0-9_]{0,6}", which in 0..3usize
        ) {
            // Lower-case or digit suffixes never make a longer known name here.
            let names = ["RETZ_MEM", "RETZ_CPU", "RETZ_PVNAME"];
            let v: BTreeMap<String, String> = names
                .iter()
                .map(|n| ((*n).to_owned(), value.clone()))
                .collect();
            let input = format!("-X${}{suffix}", names[which]);
            prop_assert_eq!(substitute_literal(&input, &v), format!("-X{value}{suffix}"));
            let cmd = substitute_command(&format!("printf '%s' {input}"), &v);
            prop_assert_eq!(sh(&cmd), format!("-X{value}{suffix}"), "{:?}", cmd);
        }

        #[test]
        fn prop_no_retz_means_unchanged(input in "[^$]{0,40}|\\$[a-z]{0,8}") {
            let v = vars(&[("RETZ_V", "x y")]);
            prop_assert_eq!(&substitute_command(&input, &v), &input);
            prop_assert_eq!(&substitute_literal(&input, &v), &input);
        }

        #[test]
        fn prop_never_panics(input in "\\PC{0,60}") {
            let v = vars(&[("RETZ_V", "a'b")]);
            let _ = substitute_command(&input, &v);
            let _ = substitute_literal(&input, &v);
        }
    }
}
