//! `holdfast`: parses the command line, runs it, and reports a failure in plain words with a
//! non-zero exit.

use std::process::ExitCode;

use clap::Parser;
use holdfast_cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    match holdfast_cli::run(cli, &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holdfast: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
