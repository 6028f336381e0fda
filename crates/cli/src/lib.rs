//! `vmig`: the command-line front end. Parses arguments, loads the job file, and hands it to
//! vmig-core's runner; everything else lives in the libraries.
//!
//! It is a library too, so that a program linking its own plugins is a complete `vmig` — its
//! plugins listed by `vmig plugins` and usable from job files — in three lines
//! (`examples/custom_parser.rs` is one):
//!
//! ```no_run
//! // use my_parser as _;   // the crate that registers the plugin
//! fn main() -> std::process::ExitCode {
//!     vmig_cli::main()
//! }
//! ```
//!
//! Exit codes: 0 success, 1 the job failed (bad input, unreachable target, …), 2 bad usage or an
//! invalid job file (also when found after parsing; see [`output::exit_code`]). Everything
//! printed goes through [`output`], which masks secrets.

mod jobstate;
mod output;
mod plan;
mod progress;
mod signals;
mod status;
mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use signals::{Interrupted, Signal, Signals};
use vmig::config::Job;
use vmig::pipeline::RunReport;

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
    /// Run the job described by CONFIG (TOML or YAML). An interrupted run of the same job is
    /// resumed where it stopped; a finished one is refused unless `--restart`.
    Migrate {
        /// The job file.
        config: PathBuf,
        /// Print a machine-readable summary (or error) as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Progress display.
        #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
        progress: ProgressMode,
        /// Where runs and progress are kept: `sqlite://PATH`, `mysql://…`, `mariadb://…`,
        /// `postgres://…`, or `none` (nothing is resumable). Default: `[state] url`, else
        /// `sqlite://.vmig/state.db` next to the job file.
        #[arg(long, value_name = "URL")]
        state: Option<String>,
        /// Forget the job's saved progress (removing what an unfinished earlier run created)
        /// and run it from the start; the target is handled as the sink's options say.
        #[arg(long)]
        restart: bool,
        /// Run as one of several workers of this job (docs/scale-out.md): claim partitions
        /// with leases (`[state] lease`, default 60s) and join workers already running it.
        /// Needs a MySQL/MariaDB or PostgreSQL state store. `[state] lease` implies it.
        #[arg(long)]
        worker: bool,
        /// For a milvus-migration milvus1x config over several Milvus 1.x collections: the
        /// collection whose job this is (each is a job of its own).
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
    },
    /// Show every run of the job described by CONFIG and its saved progress.
    Status {
        /// The job file.
        config: PathBuf,
        /// The state store (as for `migrate`).
        #[arg(long, value_name = "URL")]
        state: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// For a milvus-migration milvus1x config over several Milvus 1.x collections: the
        /// collection whose job this is (each is a job of its own).
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
    },
    /// Show what CONFIG would do: source schema, target schema after transforms, partitions.
    /// Writes nothing.
    Plan {
        /// The job file.
        config: PathBuf,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// For a milvus-migration milvus1x config over several Milvus 1.x collections: the
        /// collection whose job this is (each is a job of its own).
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
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
        /// For a milvus-migration milvus1x config over several Milvus 1.x collections: the
        /// collection whose job this is (each is a job of its own).
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
    },
    /// Serve the REST API (docs/serve.md): health probes, the plugin list and the OpenAPI
    /// document today; every route but /healthz and /readyz needs `Authorization: Bearer
    /// <token>` (tokens from VMIG_API_TOKEN and/or `--token-file`). Stops cleanly on SIGINT,
    /// SIGTERM or SIGHUP.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// A file of API tokens, one per line (`#` starts a comment); adds to VMIG_API_TOKEN.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Serve without tokens: refused unless `--listen` is a loopback address.
        #[arg(long)]
        insecure_no_auth: bool,
        /// Serve HTTPS with this certificate chain (PEM, the server's own certificate first);
        /// needs `--tls-key`. Without both, plain HTTP: keep it on loopback or behind a
        /// TLS-terminating proxy.
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// The private key of `--tls-cert` (unencrypted PEM: PKCS#8, PKCS#1 or SEC1).
        #[arg(long, value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// The largest request body accepted (e.g. `1MiB`); larger ones get 413.
        #[arg(long, default_value = "1MiB")]
        max_body: vmig::size::ByteSize,
        /// The only directory submitted jobs may read or write local files in (symlinks
        /// followed, `..` refused); without it no local path is allowed.
        #[arg(long, value_name = "DIR")]
        data_root: Option<PathBuf>,
        /// An environment variable submitted jobs may name as `${NAME}` (repeat for more); no
        /// other is expanded.
        #[arg(long, value_name = "NAME")]
        allow_env: Vec<String>,
        /// The state store submitted jobs run into (`sqlite://…`, `mysql://…`, `postgres://…`);
        /// default `sqlite://.vmig/state.db` in the data root. `vmig migrate` and `vmig status`
        /// with the same store see the same jobs.
        #[arg(long, value_name = "URL")]
        state: Option<String>,
        /// How many submitted jobs run at once; the others wait in the order they came.
        #[arg(long, default_value_t = 2)]
        max_jobs: usize,
        /// A milvus-migration config (`migration.yaml`): also answer that tool's REST routes
        /// (`/api/v1/healthy`, `start`, `dump`, `load`, `get_job`; token needed), running the
        /// file's translation, read again on each request, as jobs of this server.
        #[arg(long, value_name = "FILE")]
        compat_config: Option<PathBuf>,
    },
    /// Print the vmig job equivalent to a milvus-migration config file (`migration.yaml`), with
    /// a comment per key saying what it became, or why it is ignored. Secrets are written as
    /// `${VMIG_…}` references, never copied. `migrate`, `plan`, `verify` and `status` take such
    /// a file directly too.
    Convert {
        /// The milvus-migration config file.
        config: PathBuf,
        /// The job-file format to print.
        #[arg(long, value_enum, default_value_t = ConvertFormat::Toml)]
        format: ConvertFormat,
        /// For a milvus1x config over several Milvus 1.x collections: the collection whose
        /// job to print (each is a job of its own).
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
    },
    /// milvus-migration's `start`: run its config file (`-c`, else ./migration.yaml, else
    /// ./configs/migration.yaml) as `vmig migrate` runs it: stage, then import.
    Start(CompatRun),
    /// milvus-migration's `dump`: only stage the files (to the target's `outputDir`), importing
    /// nothing; `load` imports them.
    Dump(CompatRun),
    /// milvus-migration's `load`: import what `dump` staged, through the files source, keeping
    /// the partition each staged unit names (e.g. a Milvus 1.x partition).
    Load(CompatRun),
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

/// The job-file format `vmig convert` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConvertFormat {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
}

/// Runs `vmig` with the process's arguments: what the `vmig` binary's `main` is.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// Runs `vmig` with `args` (the first one is the program's name), printing as the binary does
/// and returning its exit code. Bad usage prints clap's message and exits the process with 2,
/// as the binary does.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    vmig::redact::register_env();
    output::init_logging(cli.verbose, cli.quiet);
    let json = match &cli.command {
        Command::Migrate { json, .. }
        | Command::Plan { json, .. }
        | Command::Status { json, .. } => *json,
        Command::Start(a) | Command::Dump(a) | Command::Load(a) => a.json,
        Command::Verify { .. }
        | Command::Plugins { .. }
        | Command::Serve { .. }
        | Command::Convert { .. } => false,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => ExitCode::from(output::fail(&err, json)),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Plugins { json, examples } => plan::print_plugins(json, examples),
        Command::Convert {
            config,
            format,
            collection,
        } => convert(&config, format, collection.as_deref()),
        Command::Start(args) => compat_run(vmig_compat::Step::Start, args, cli.quiet),
        Command::Dump(args) => compat_run(vmig_compat::Step::Dump, args, cli.quiet),
        Command::Load(args) => compat_run(vmig_compat::Step::Load, args, cli.quiet),
        Command::Serve {
            listen,
            token_file,
            insecure_no_auth,
            tls_cert,
            tls_key,
            max_body,
            data_root,
            allow_env,
            state,
            max_jobs,
            compat_config,
        } => {
            let options = serve_options(listen, token_file, insecure_no_auth, max_body)?;
            let tls = vmig_serve::TlsFiles::from_flags(tls_cert, tls_key)
                .map_err(|m| vmig::Error::config("serve", m))?;
            let options = vmig_serve::ServeOptions {
                tls,
                data_root,
                allow_env,
                state,
                max_jobs,
                compat_config,
                ..options
            };
            runtime()?.block_on(serve(options))
        }
        Command::Verify {
            config,
            json,
            examples,
            collection,
        } => {
            let job = load(&config, collection.as_deref())?;
            runtime()?.block_on(read_only(verify::run(job, json, examples)))
        }
        Command::Plan {
            config,
            json,
            collection,
        } => {
            let job = load(&config, collection.as_deref())?;
            runtime()?.block_on(read_only(plan::print_plan(&job, json)))
        }
        Command::Status {
            config,
            state,
            json,
            collection,
        } => {
            let job = load(&config, collection.as_deref())?;
            runtime()?.block_on(read_only(status::print(job, state, json)))
        }
        Command::Migrate {
            config,
            json,
            progress,
            state,
            restart,
            worker,
            collection,
        } => {
            let job = load(&config, collection.as_deref())?;
            let mode = match progress {
                ProgressMode::Auto if cli.quiet => ProgressMode::None,
                ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
                ProgressMode::Auto => ProgressMode::Log,
                other => other,
            };
            let how = Migrate {
                mode,
                state,
                restart,
                worker,
                config,
            };
            let outcome = runtime()?.block_on(migrate(job, how))?;
            print_summary(&outcome, json)
        }
    }
}

/// The options of `vmig serve`: the API tokens from VMIG_API_TOKEN and `token_file`.
fn serve_options(
    listen: std::net::SocketAddr,
    token_file: Option<PathBuf>,
    insecure_no_auth: bool,
    max_body: vmig::size::ByteSize,
) -> anyhow::Result<vmig_serve::ServeOptions> {
    let bad = |m: String| vmig::Error::config("serve", m);
    let mut tokens = vmig_serve::Tokens::new(std::env::var("VMIG_API_TOKEN").ok())
        .map_err(|m| bad(format!("VMIG_API_TOKEN: {m}")))?;
    if let Some(file) = &token_file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            bad(format!(
                "cannot read the token file {}: {e}",
                file.display()
            ))
        })?;
        let more = vmig_serve::Tokens::from_file_text(&text)
            .map_err(|m| bad(format!("{}: {m}", file.display())))?;
        if more.is_empty() {
            return Err(bad(format!("the token file {} holds no token", file.display())).into());
        }
        tokens = tokens.with(&more);
    }
    Ok(vmig_serve::ServeOptions {
        insecure_no_auth,
        max_body: max_body.bytes_usize(),
        ..vmig_serve::ServeOptions::new(listen, tokens)
    })
}

/// `vmig serve`: the server until a signal (a clean stop: exit 0).
async fn serve(options: vmig_serve::ServeOptions) -> anyhow::Result<()> {
    let bad = |m: String| vmig::Error::config("serve", m);
    options
        .check()
        .map_err(|e| bad(e.to_string().replace("invalid `serve` configuration: ", "")))?;
    let signals = Signals::install().context("installing signal handlers")?;
    vmig_serve::serve(options, signals.token().clone()).await?;
    if let Some(signal) = signals.received() {
        tracing::info!("vmig serve: stopped by {}", signal.name());
    }
    Ok(())
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

/// Loads a job file, or a milvus-migration config translated into a job
/// ([`vmig_compat::is_migration_file`]: YAML with a top-level `dumper`); the keys the
/// translation ignored are logged. A milvus1x config over several 1.x collections is one job
/// per collection ([`compat_jobs`]): `collection` picks one, and is required then.
fn load(config: &Path, collection: Option<&str>) -> anyhow::Result<Job> {
    if !vmig_compat::is_migration_file(config)? {
        if let Some(c) = collection {
            return Err(vmig::Error::config(
                "job",
                format!("--collection {c}: only a milvus-migration config (milvus1x) has one job per collection; {} is a vmig job", config.display()),
            )
            .into());
        }
        return Ok(Job::from_path(config)?);
    }
    let mut jobs = runtime()?.block_on(compat_jobs(config, vmig_compat::Step::Start))?;
    let names: Vec<String> = jobs.iter().filter_map(|(c, _)| c.clone()).collect();
    let index = part_index(config, &names, jobs.len(), collection)?;
    Ok(jobs.swap_remove(index).1)
}

/// Which of a config's `count` jobs (named `names` when several) `collection` picks: the only
/// one without it; the one it names among several.
///
/// # Errors
/// [`vmig::Error::Config`] when there are several and `collection` is missing or names none.
fn part_index(
    config: &Path,
    names: &[String],
    count: usize,
    collection: Option<&str>,
) -> anyhow::Result<usize> {
    match collection {
        None if count == 1 => Ok(0),
        None => Err(vmig::Error::config(
            vmig_compat::COMPONENT,
            format!(
                "{} is {} jobs, one per target collection ({}): `vmig start|dump|load -c {}` runs them all; give --collection NAME to plan, migrate, verify, convert or see the status of one",
                config.display(),
                names.len(),
                names.join(", "),
                config.display()
            ),
        )
        .into()),
        Some(c) => names.iter().position(|n| n == c).ok_or_else(|| {
            vmig::Error::config(
                vmig_compat::COMPONENT,
                format!(
                    "--collection {c}: {} has no job into a collection of that name{}",
                    config.display(),
                    if names.is_empty() { String::new() } else { format!(" (it has {})", names.join(", ")) }
                ),
            )
            .into()
        }),
    }
}

/// The vmig jobs of milvus-migration's config at `config` for `step`: one, or one per Milvus
/// 1.x collection or per index of an Elasticsearch meta file ([`vmig::compat::translations`]),
/// each with its part's name (the target collection). Jobs are named after the file
/// (`migration`), the part (`migration-books`) and the step (`migration-books-dump`), so each
/// resumes on its own.
async fn compat_jobs(
    config: &Path,
    step: vmig_compat::Step,
) -> anyhow::Result<Vec<(Option<String>, Job)>> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let translations = vmig::compat::translations(config, &cwd).await?;
    if let Some(first) = translations.first() {
        tracing::info!(
            "{} is a milvus-migration config (workMode {}); running its `{}` as {} vmig job(s) (`vmig convert` prints them)",
            config.display(),
            first.work_mode,
            step.as_str(),
            translations.len()
        );
        for note in first.ignored() {
            tracing::info!("{}: ignored: {}", note.key, note.text);
        }
    }
    let base = vmig_compat::base_dir(config);
    let several = translations.len() > 1;
    let stem = config
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("migration")
        .to_string();
    let mut jobs = Vec::new();
    for t in translations {
        let part = if several { t.part.clone() } else { None };
        let t = vmig_compat::for_step(t, step).map_err(|e| match e {
            vmig::Error::Config { message, .. } => vmig::Error::config(
                vmig_compat::COMPONENT,
                format!("{}: {message}", config.display()),
            ),
            other => other,
        })?;
        let mut job = Job::from_config(t.job, base.clone())?;
        if job.state.name.is_none() {
            let mut name = stem.clone();
            if let Some(c) = &part {
                name = format!("{name}-{c}");
            }
            if step != vmig_compat::Step::Start {
                name = format!("{name}-{}", step.as_str());
            }
            job.name = name;
        }
        jobs.push((part, job));
    }
    Ok(jobs)
}

/// `vmig convert`: the translated job on stdout; for a milvus1x config over several 1.x
/// collections, the job of `collection` (required then).
fn convert(config: &Path, format: ConvertFormat, collection: Option<&str>) -> anyhow::Result<()> {
    if !vmig_compat::is_migration_file(config)? {
        return Err(vmig::Error::config(
            vmig_compat::COMPONENT,
            format!(
                "{} is not a milvus-migration config (a .yaml/.yml file with a top-level `dumper`)",
                config.display()
            ),
        )
        .into());
    }
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let mut translations = runtime()?.block_on(vmig::compat::translations(config, &cwd))?;
    let names: Vec<String> = translations.iter().filter_map(|t| t.part.clone()).collect();
    let index = part_index(config, &names, translations.len(), collection)?;
    let translation = translations.swap_remove(index);
    let format = match format {
        ConvertFormat::Toml => vmig_compat::OutputFormat::Toml,
        ConvertFormat::Yaml => vmig_compat::OutputFormat::Yaml,
    };
    let text = vmig_compat::render(&translation, &config.display().to_string(), format)?;
    output::out(&format!("{}\n", text.trim_end()));
    Ok(())
}

/// The arguments of `vmig start|dump|load`, milvus-migration's commands.
#[derive(Debug, clap::Args)]
struct CompatRun {
    /// The milvus-migration config file; default ./migration.yaml, then
    /// ./configs/migration.yaml (where milvus-migration looks).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print a machine-readable summary (or error) as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// The state store (as for `migrate`).
    #[arg(long, value_name = "URL")]
    state: Option<String>,
    /// Forget the saved progress of this command's job and run it from the start.
    #[arg(long)]
    restart: bool,
}

/// Runs `vmig start|dump|load`: the config's translation for `step` ([`compat_jobs`]), each
/// job as `vmig migrate` runs one, in turn; with several (one per Milvus 1.x collection) a job
/// an earlier run finished is skipped, so a re-run goes on where the failed one stopped.
fn compat_run(step: vmig_compat::Step, args: CompatRun, quiet: bool) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let config = match args.config {
        Some(c) => c,
        None => vmig_compat::default_config_file(&cwd)?,
    };
    let rt = runtime()?;
    let jobs = rt.block_on(compat_jobs(&config, step))?;
    let several = jobs.len() > 1;
    let mode = match args.progress {
        ProgressMode::Auto if quiet => ProgressMode::None,
        ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
        ProgressMode::Auto => ProgressMode::Log,
        other => other,
    };
    let count = jobs.len();
    for (i, (collection, job)) in jobs.into_iter().enumerate() {
        let name = job.name.clone();
        if let Some(c) = &collection {
            output::err_line(&format!(
                "collection {c} (job {} of {count}), job `{name}`",
                i + 1
            ));
        }
        let how = Migrate {
            mode,
            state: args.state.clone(),
            restart: args.restart,
            worker: false,
            config: config.clone(),
        };
        match rt.block_on(migrate(job, how)) {
            Ok(outcome) => print_summary(&outcome, args.json)?,
            // Another collection's job finished in an earlier run: go on with the rest.
            Err(e)
                if several
                    && e.chain().any(|c| {
                        matches!(
                            c.downcast_ref::<vmig::jobs::JobError>(),
                            Some(vmig::jobs::JobError::Refused(r)) if r.finished
                        )
                    }) =>
            {
                output::err_line(&format!("job `{name}` already finished; skipped"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How `vmig migrate` was asked to run.
struct Migrate {
    mode: ProgressMode,
    state: Option<String>,
    restart: bool,
    worker: bool,
    config: PathBuf,
}

/// Runs the job; returns its report and the signal that arrived after the output was committed,
/// if one did (the job is complete then, and the summary says so).
async fn migrate(job: Job, how: Migrate) -> anyhow::Result<Outcome> {
    let signals = Signals::install().context("installing signal handlers")?;
    let url = jobstate::url(&job, how.state.as_deref());
    let lease = jobstate::lease(&job, how.worker, url.as_deref())?;
    let store = match url {
        Some(url) => Some(
            vmig::state::StateStore::open(&url, &job.ctx.base_dir)
                .await
                .context("opening the state store")?,
        ),
        None if how.restart => {
            return Err(vmig::Error::config(
                "state",
                "`--restart` needs a state store to forget; without one (`--state none`) every run starts from the beginning",
            )
            .into())
        }
        None => None,
    };
    let start = match &store {
        Some(store) => Some(jobstate::begin(store, &job, how.restart, lease).await?),
        None => None,
    };
    if let Some(start) = &start {
        for line in &start.discarded {
            output::err_line(&format!("--restart: {line}"));
        }
    }
    // From here on the run is recorded: whatever happens, its end is recorded too.
    let resumable = store.is_some();
    let resume_hint = format!("`vmig migrate {}` resumes it", how.config.display());
    let worker = start.as_ref().and_then(|s| s.worker.clone());
    let result = run_job(
        job,
        how.mode,
        &signals,
        store.as_ref(),
        worker,
        resumable,
        &resume_hint,
    )
    .await;
    if let (Some(store), Some(start)) = (&store, &start) {
        let error = result.as_ref().err().map(|e| format!("{e:#}"));
        if let Err(e) = jobstate::finish(
            store,
            &start.run,
            error.as_deref(),
            signals.received().is_some(),
        )
        .await
        {
            tracing::warn!(
                "could not record how the run ended in {}: {e:#}",
                store.location()
            );
        }
    }
    let (report, signal) = result?;
    Ok(Outcome {
        report,
        signal,
        run_id: start.map(|s| s.run.id),
    })
}

/// What a finished `vmig migrate` reports.
struct Outcome {
    report: RunReport,
    /// A signal that arrived after the output was committed.
    signal: Option<Signal>,
    /// The run's id in the state store.
    run_id: Option<String>,
}

/// Builds and runs the job's pipeline (saving progress in `store` when there is one).
async fn run_job(
    job: Job,
    mode: ProgressMode,
    signals: &Signals,
    store: Option<&vmig::state::StateStore>,
    worker: Option<Arc<vmig::state::JobWorker>>,
    resumable: bool,
    resume_hint: &str,
) -> anyhow::Result<(RunReport, Option<Signal>)> {
    let name = job.name.clone();
    let saves = worker.is_some() || store.is_some();
    let built = vmig::jobs::pipeline(job, store, worker, signals.token().clone());
    // Building connects and reads headers, but writes nothing yet.
    let pipeline = tokio::select! {
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
    if saves {
        // Progress is saved before every write: a second signal may end the process at once.
        signals.exit_on_second_signal();
    }
    let observer = Arc::new(
        progress::Progress::new(mode != ProgressMode::None, mode == ProgressMode::Bar).named(&name),
    );
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
            if resumable {
                // The sentences of `left` end with their own full stop.
                let stop = if message.ends_with('.') { " " } else { ". " };
                message.push_str(&format!("{stop}Its progress is saved: {resume_hint}."));
            }
            Err(Interrupted {
                signal,
                message,
                left,
            }
            .into())
        }
        (Err(e), None) => {
            if resumable {
                tracing::warn!("The run failed; its progress is saved, and once the cause below is fixed {resume_hint}.");
            }
            Err(e.into())
        }
    }
}

fn print_summary(outcome: &Outcome, json: bool) -> anyhow::Result<()> {
    let report = &outcome.report;
    let signal = outcome.signal;
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
            obj.insert("run_id".into(), serde_json::json!(outcome.run_id));
            obj.entry("resumed").or_insert(serde_json::Value::Null);
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
        if let Some(from) = &report.resumed {
            output::err_line(&format!(
                "this run resumed the job: {} rows had been written by earlier runs",
                from.rows_written
            ));
        }
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
