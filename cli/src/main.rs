//! `formbridge`: the command line. Parses the arguments and runs the
//! command; an error is printed with what to do, and exits 2.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use formbridge::{gateway, sender, tenants};

/// mimalloc instead of the system allocator. With glibc's, the local
/// gateway's RSS grew by about 9 KiB per event waiting to be retried,
/// most of it memory freed after deliveries that the allocator kept (a
/// heap profile found less than half of the RSS live, and `malloc_trim`
/// returned nothing): a soak with failing tenants peaked at 127.6 MiB,
/// 69.8 MiB with mimalloc, with the same RSS and latency at 2,250
/// requests/s. Without transparent huge pages (`no_thp`), which held
/// 10 MiB more at a steady rate (docs/performance.md, "The local
/// gateway's allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "formbridge",
    version,
    about = "Form-Bridge: signed form-submission webhooks into AWS, delivered per tenant."
)]
#[cfg_attr(
    feature = "aws",
    command(after_help = "Examples:\n  \
        formbridge serve\n      \
            run the whole pipeline here, with a demo tenant\n  \
        formbridge send --url http://127.0.0.1:3000 --tenant demo \\\n      \
            --secret fb_... body.json\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n  \
        formbridge tenants create acme --stack form-bridge \\\n      \
            --destination https://hooks.acme.example/forms")
)]
#[cfg_attr(
    not(feature = "aws"),
    command(after_help = "Examples:\n  \
        formbridge serve\n      \
            run the whole pipeline here, with a demo tenant\n  \
        formbridge send --url http://127.0.0.1:3000 --tenant demo \\\n      \
            --secret fb_... body.json\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n\n\
        This is the gateway-only build. The operations on a deployed stack\n\
        (tenants create|rotate|..., dlq) need the full build:\n\
        cargo install --locked --path cli")
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline (authorizer, ingest, bus, connector) in one process.
    Serve(gateway::ServeArgs),
    /// Print the three signature headers for a body.
    Sign(sender::SignArgs),
    /// Sign a body and POST it; print the status and submission IDs.
    Send(sender::SendArgs),
    /// Run a webhook receiver that verifies, counts and prints deliveries.
    Receive(sender::ReceiveArgs),
    /// Tenants: new records, and operations on a deployed stack.
    #[command(alias = "tenant")]
    Tenants(tenants::TenantsArgs),
    /// Dead-lettered events on a deployed stack.
    #[cfg(feature = "aws")]
    Dlq(formbridge::aws::dlq::DlqArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => args.run(),
        Command::Sign(args) => args.run(),
        Command::Send(args) => args.run(),
        Command::Receive(args) => args.run(),
        Command::Tenants(args) => args.run(),
        #[cfg(feature = "aws")]
        Command::Dlq(args) => args.run(),
    };
    result.unwrap_or_else(|e| {
        eprintln!("formbridge: error: {e:#}");
        ExitCode::from(2)
    })
}

/// The command line as a whole: every flag a message or a doc names
/// exists, and help examples read as commands.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use clap::CommandFactory as _;

    use super::Cli;

    /// Every long flag of every command, with its dashes.
    fn flags() -> BTreeSet<String> {
        fn walk(command: &clap::Command, flags: &mut BTreeSet<String>) {
            flags.extend(["--help".to_owned(), "--version".to_owned()]);
            for arg in command.get_arguments() {
                if let Some(long) = arg.get_long() {
                    flags.insert(format!("--{long}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, flags);
            }
        }
        let mut flags = BTreeSet::new();
        walk(&Cli::command(), &mut flags);
        flags
    }

    /// The words in a text that look like long flags.
    fn mentioned(text: &str) -> impl Iterator<Item = &str> {
        text.match_indices("--").filter_map(|(at, _)| {
            let before = text[..at].chars().next_back();
            let word = text[at + 2..]
                .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                .next()?;
            let starts_a_flag = word.chars().next().is_some_and(|c| c.is_ascii_lowercase());
            let stands_alone = before.is_none_or(|c| !c.is_alphanumeric() && c != '-');
            (starts_a_flag && stands_alone).then(|| &text[at..at + 2 + word.len()])
        })
    }

    fn files(dir: &Path, ext: &str, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                files(&path, ext, found);
            } else if path.extension().is_some_and(|e| e == ext) {
                found.push(path);
            }
        }
    }

    /// Flags of other programs that messages and docs name: the AWS CLI's,
    /// and cargo's for building this one.
    const THEIRS: [&str; 5] = [
        "--secret-id",
        "--no-default-features",
        "--release",
        "--locked",
        "--path",
    ];

    /// The flags a `formbridge ...` command line uses that the command it
    /// names does not define. The line's words are followed down the
    /// subcommands; a line that names no subcommand (printed output such
    /// as "formbridge: ...") is not a command.
    fn unknown_flags<'a>(root: &clap::Command, command_line: &'a str) -> Vec<&'a str> {
        let mut words = command_line
            .split_whitespace()
            .map(|w| w.trim_matches(|c| matches!(c, '[' | ']' | '`' | '"' | '\'')));
        let mut command = root;
        let mut named = false;
        let mut rest = Vec::new();
        for word in words.by_ref() {
            match command.find_subcommand(word) {
                Some(sub) if rest.is_empty() => {
                    command = sub;
                    named = true;
                }
                _ => {
                    rest.push(word);
                    break;
                }
            }
        }
        if !named {
            return Vec::new();
        }
        let defined = |flag: &str| {
            flag == "--help"
                || command
                    .get_arguments()
                    .any(|a| a.get_long().is_some_and(|l| flag == format!("--{l}")))
        };
        rest.into_iter()
            .chain(words)
            .flat_map(mentioned)
            .filter(|flag| !defined(flag) && !THEIRS.contains(flag))
            .collect()
    }

    #[test]
    fn every_flag_a_message_or_a_doc_names_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cli = Cli::command();
        let mut unknown = Vec::new();
        // Messages and help: every string in the command line's code names
        // a flag of some command (the full build's: the gateway-only build
        // lacks the stack commands its aws/ code names).
        let mut sources = Vec::new();
        files(&root.join("src"), "rs", &mut sources);
        if cfg!(feature = "aws") {
            let known = flags();
            for path in &sources {
                let text = std::fs::read_to_string(path).expect("a source file");
                for flag in mentioned(&text) {
                    if !known.contains(flag) && !THEIRS.contains(&flag) {
                        unknown.push(format!("{}: {flag}", path.display()));
                    }
                }
            }
        }
        // Docs: each `formbridge` command shown uses only its own flags
        // (a line ending in a backslash goes on with the next).
        let mut docs = vec![
            root.join("../README.md"),
            root.join("../examples/README.md"),
        ];
        files(&root.join("../docs"), "md", &mut docs);
        for path in &docs {
            let text = std::fs::read_to_string(path).expect("a doc");
            let text = text.replace("\\\n", " ");
            for line in text.lines() {
                for (at, _) in line.match_indices("formbridge ") {
                    let command_line = line[at + "formbridge ".len()..]
                        .split(['|', '#', ';', '>', '(', ')'])
                        .next()
                        .unwrap_or_default();
                    let command_line = command_line.split("`formbridge").next().unwrap_or_default();
                    let stack_command = command_line.contains("--stack")
                        || command_line.starts_with("dlq")
                        || [
                            "create", "rotate", "suspend", "resume", "list", "show", "delete",
                            "promote", "demote", "scale", "isolate", "share", "source",
                        ]
                        .iter()
                        .any(|c| command_line.starts_with(&format!("tenants {c}")));
                    if stack_command && !cfg!(feature = "aws") {
                        continue;
                    }
                    for flag in unknown_flags(&cli, command_line) {
                        unknown.push(format!("{}: {flag} in {line:?}", path.display()));
                    }
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "flags that the command they are used with does not define:\n{}",
            unknown.join("\n")
        );
        assert!(sources.len() > 10 && docs.len() > 3, "{sources:?} {docs:?}");
    }

    #[test]
    fn a_flag_used_with_the_wrong_command_is_caught() {
        let cli = Cli::command();
        assert_eq!(
            unknown_flags(&cli, "sign --tenant acme --stack x -"),
            ["--stack"]
        );
        assert!(unknown_flags(&cli, "sign --tenant acme --secret s -").is_empty());
        // (Built at run time: the source scan would take it for a message.)
        let output = format!(": local gateway listening {}nonsense", "--");
        assert!(unknown_flags(&cli, &output).is_empty());
        if cfg!(feature = "aws") {
            assert_eq!(
                unknown_flags(&cli, "tenants new acme --stack x"),
                ["--stack"]
            );
            assert!(unknown_flags(&cli, "tenants create acme --stack x --dedicated").is_empty());
            assert!(unknown_flags(&cli, "tenants create acme --stack x --isolated").is_empty());
            assert_eq!(
                unknown_flags(&cli, "tenants isolate acme --isolated"),
                ["--isolated"]
            );
        }
    }

    #[test]
    fn help_examples_fit_80_columns_and_stay_indented() {
        // Rendered unwrapped: a line over 80 columns would be wrapped on an
        // 80-column terminal, and its tail would read as another command.
        fn check(command: &mut clap::Command, path: &str, bad: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            let help = command.render_long_help().to_string();
            let mut section = "";
            for line in help.lines() {
                if line.ends_with(':') && !line.starts_with(' ') {
                    section = line;
                    continue;
                } else if line.is_empty() && section == "Examples:" {
                    section = "after the examples";
                }
                let text = section == "Examples:" || section == "after the examples";
                if text && line.chars().count() > 80 {
                    bad.push(format!("{path}: wider than 80 columns: {line:?}"));
                }
                if section == "Examples:" && !line.is_empty() && !line.starts_with("  ") {
                    bad.push(format!("{path}: not indented: {line:?}"));
                }
            }
            for sub in command.get_subcommands_mut() {
                check(sub, &path, bad);
            }
        }
        let mut bad = Vec::new();
        let mut root = Cli::command().term_width(10_000);
        root.build();
        check(&mut root, "", &mut bad);
        assert!(
            bad.is_empty(),
            "help examples that an 80-column terminal breaks:\n{}",
            bad.join("\n")
        );
    }
}
