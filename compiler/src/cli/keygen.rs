use super::EXIT_USAGE;
use crate::emit::keys;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Directory to write NAME.key (private, mode 0600) and NAME.pub into.
    #[arg(long)]
    out: PathBuf,
    /// Base name of the two files.
    #[arg(long, default_value = "meshc")]
    name: String,
    /// Overwrite existing key files.
    #[arg(long)]
    force: bool,
}

pub fn run(args: KeygenArgs) -> ExitCode {
    let written = keys::generate().and_then(|key| {
        let (private, public) = keys::write_pair(&args.out, &args.name, &key, args.force)?;
        Ok((private, public, mesh_proxy_api::envelope::key_id(&key.verifying_key())))
    });
    match written {
        Ok((private, public, id)) => {
            outln!("wrote {} (private: keep it secret) and {} (key id {id})", private.display(), public.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
