use super::EXIT_USAGE;
use crate::findings::Code;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A finding code such as `probe-denied`; without it, every code is listed.
    code: Option<String>,
}

pub fn run(args: ExplainArgs) -> ExitCode {
    let Some(code) = args.code else {
        for c in Code::ALL {
            let e = c.entry();
            outln!("{:<32} {:<8} {}", c.as_str(), e.severity.as_str(), e.summary);
        }
        return ExitCode::SUCCESS;
    };
    match Code::parse(&code) {
        Some(c) => {
            out!("{}", crate::findings::catalogue::render_entry(c));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: unknown finding code `{code}`; `meshc explain` lists them");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[derive(Args, Debug)]
pub struct SchemasArgs {
    /// Directory to write the schema files into.
    #[arg(long, default_value = "schemas")]
    out: PathBuf,
}

pub fn schemas(args: SchemasArgs) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("error: cannot create {}: {e}", args.out.display());
        return ExitCode::from(EXIT_USAGE);
    }
    for (name, text) in crate::schemas::all() {
        let path = args.out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
        outln!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
