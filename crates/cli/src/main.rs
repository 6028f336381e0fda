//! `vmig`: the command-line front end. Parses arguments, loads the job file, and hands it to
//! vmig-core's runner; everything else lives in the libraries.
//!
//! Exit codes: 0 success, 1 the job failed (bad input, unreachable target, …), 2 bad usage or an
//! invalid job file (also when found after parsing; see [`output::exit_code`]). Everything
//! printed goes through [`output`], which masks secrets.

mod output;
mod plan;
mod progress;
mod signals;
mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use signals::{Interrupted, Signal, Signals};
use vmig::config::Job;
use vmig::pipeline::{Pipeline, RunReport};

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
    vmig::redact::register_env();
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
            runtime()?.block_on(read_only(verify::run(job, json, examples)))
        }
        Command::Plan { config, json } => {
            let job = load(&config)?;
            runtime()?.block_on(read_only(plan::print_plan(&job, json)))
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
            let (report, signal) = runtime()?.block_on(migrate(job, mode))?;
            print_summary(&report, json, signal)
        }
    }
}

/// Runs a command that writes nothing (`plan`, `verify`); a signal stops it at once.
async fn read_only(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let signals = Signals::install().context("installing signal handlers")?;
    tokio::select! {
        result = work => result,
        signal = signals.wait() => Err(Interrupted {
            signal,
            message: "stopped; this command only reads, so nothing was written".into(),
            left: Vec::new(),
        }
        .into()),
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

/// Runs the job; returns its report and the signal that arrived after the output was committed,
/// if one did (the job is complete then, and the summary says so).
async fn migrate(job: Job, mode: ProgressMode) -> anyhow::Result<(RunReport, Option<Signal>)> {
    let signals = Signals::install().context("installing signal handlers")?;
    let built = async {
        let source = job.source.build(&job.ctx).await?;
        let sink = job.sink.build(&job.ctx).await?;
        anyhow::Ok((source, sink))
    };
    // Building connects and reads headers, but writes nothing yet.
    let (source, sink) = tokio::select! {
        built = built => built?,
        signal = signals.wait() => {
            return Err(Interrupted {
                signal,
                message: "stopped before anything was written".into(),
                left: Vec::new(),
            }
            .into())
        }
    };
    let observer = Arc::new(progress::Progress::new(
        mode != ProgressMode::None,
        mode == ProgressMode::Bar,
    ));
    let pipeline = Pipeline::new(source, sink)
        .with_transforms(job.transforms)
        .with_options(job.options)
        .with_cancel(signals.token().clone());
    let result = pipeline.run(Arc::clone(&observer) as _).await;
    observer.finish();
    match (result, signals.received()) {
        (Ok(report), signal) => Ok((report, signal)),
        (Err(e), Some(signal)) => {
            let left = match &e {
                vmig::Error::Stopped { left, .. } => left.clone(),
                _ => Vec::new(),
            };
            let mut message = "the run stopped before committing".to_string();
            if !matches!(e.root(), vmig::Error::Cancelled) {
                message.push_str(&format!(" ({})", e.root()));
            }
            if left.is_empty() {
                message.push_str("; nothing of it was committed");
            } else {
                message.push_str(&format!(". Left in the target: {}", left.join(" ")));
            }
            Err(Interrupted {
                signal,
                message,
                left,
            }
            .into())
        }
        (Err(e), _) => Err(e.into()),
    }
}

fn print_summary(report: &RunReport, json: bool, signal: Option<Signal>) -> anyhow::Result<()> {
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
            if let Some(signal) = signal {
                obj.insert("signal".into(), signal.name().into());
            }
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
    if let Some(signal) = signal {
        tracing::warn!(
            "{} arrived while the output was being committed; the commit had begun and finished, so the job is complete (exit 0).",
            signal.name()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The binary's registry holds the plugins of exactly the `vmig` features it was built with.
    #[test]
    fn every_enabled_plugin_is_registered() {
        vmig::check_registry().unwrap();
    }
}
