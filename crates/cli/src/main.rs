//! `vmig`: the command-line front end. Parses arguments, loads the job file, and hands it to
//! vmig-core's runner; everything else lives in the libraries.
//!
//! Exit codes: 0 success, 1 the job failed (bad input, unreachable target, …), 2 bad usage or an
//! invalid job file (also when found after parsing; see [`output::exit_code`]). Everything
//! printed goes through [`output`], which masks secrets.

mod output;
mod plan;
mod plugins;
mod progress;
mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use vmig_core::config::Job;
use vmig_core::pipeline::{Pipeline, RunReport};

/// Move vector data into Milvus 2.x, exactly.
#[derive(Debug, Parser)]
#[command(name = "vmig", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v info for every crate, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the job described by CONFIG (TOML or YAML).
    Migrate {
        /// The job file.
        config: PathBuf,
        /// Print a machine-readable summary (or error) as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Progress display.
        #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
        progress: ProgressMode,
    },
    /// Show what CONFIG would do: source schema, target schema after transforms, partitions.
    /// Writes nothing.
    Plan {
        /// The job file.
        config: PathBuf,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare the target with the source after a migration: row counts, then every row's primary
    /// key and a hash of all its values (vectors bit for bit). Exits 1 on any difference.
    Verify {
        /// The job file that ran the migration.
        config: PathBuf,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// How many differing keys to show.
        #[arg(long, default_value_t = 10)]
        examples: usize,
    },
    /// List the sources, transformers and sinks this binary contains.
    Plugins {
        /// Print as JSON, with each plugin's example configuration.
        #[arg(long)]
        json: bool,
        /// Show an example configuration for each plugin.
        #[arg(long)]
        examples: bool,
    },
}

/// How progress is shown during `migrate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    Auto,
    /// Always a bar.
    Bar,
    /// Log lines every few seconds.
    Log,
    /// Nothing.
    None,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vmig_core::redact::register_env();
    output::init_logging(cli.verbose, cli.quiet);
    let json = match &cli.command {
        Command::Migrate { json, .. } | Command::Plan { json, .. } => *json,
        Command::Verify { .. } => false,
        Command::Plugins { .. } => false,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => ExitCode::from(output::fail(&err, json)),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Plugins { json, examples } => plan::print_plugins(json, examples),
        Command::Verify {
            config,
            json,
            examples,
        } => {
            let job = load(&config)?;
            runtime()?.block_on(verify::run(job, json, examples))
        }
        Command::Plan { config, json } => {
            let job = load(&config)?;
            runtime()?.block_on(plan::print_plan(&job, json))
        }
        Command::Migrate {
            config,
            json,
            progress,
        } => {
            let job = load(&config)?;
            let mode = match progress {
                ProgressMode::Auto if cli.quiet => ProgressMode::None,
                ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
                ProgressMode::Auto => ProgressMode::Log,
                other => other,
            };
            let report = runtime()?.block_on(migrate(job, mode))?;
            print_summary(&report, json)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn load(config: &Path) -> anyhow::Result<Job> {
    Ok(Job::from_path(config)?)
}

async fn migrate(job: Job, mode: ProgressMode) -> anyhow::Result<RunReport> {
    let source = job.source.build(&job.ctx).await?;
    let sink = job.sink.build(&job.ctx).await?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!(
                "Interrupted: stopping; files of this run that are not complete are removed."
            );
            on_signal.cancel();
        }
    });
    let observer = Arc::new(progress::Progress::new(
        mode != ProgressMode::None,
        mode == ProgressMode::Bar,
    ));
    let pipeline = Pipeline::new(source, sink)
        .with_transforms(job.transforms)
        .with_options(job.options)
        .with_cancel(cancel);
    let result = pipeline.run(Arc::clone(&observer) as _).await;
    observer.finish();
    Ok(result?)
}

fn print_summary(report: &RunReport, json: bool) -> anyhow::Result<()> {
    let rate = if report.seconds > 0.0 {
        report.rows_written as f64 / report.seconds
    } else {
        0.0
    };
    if json {
        let mut v = serde_json::to_value(report)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("status".into(), "ok".into());
            obj.insert("rows_per_second".into(), serde_json::json!(rate.round()));
        }
        output::json(v, false)?;
    } else {
        output::err_line(&format!(
            "done: {} rows read, {} rows written ({} files, {}) to {} in {:.1}s ({:.0} rows/s)",
            report.rows_read,
            report.rows_written,
            report.files.len(),
            progress::human_bytes(report.bytes_written),
            report.target,
            report.seconds,
            rate
        ));
    }
    Ok(())
}
