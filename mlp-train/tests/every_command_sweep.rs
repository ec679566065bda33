//! Issue 17's "done when": every command, run against each kind of hostile output or
//! input, ends with exit code 0 or 1, never panics, never hangs, replaces no special
//! file, loses or changes no file that was there before, and leaves no temporary file.
//!
//! The matrix is [`COMMANDS`] × [`CASES`]. In each case the command's inputs (data,
//! model, image) live in the case's directory, its output file or directory (if it
//! has one) is the hostile thing, and so is its standard output where that makes
//! sense:
//!
//! | case | output file / directory | standard output | inputs and working directory |
//! |---|---|---|---|
//! | `read-only` | new names on a read-only tmpfs (read-only even to root) | a pipe | on the read-only tmpfs |
//! | `dev-null` | a private `/dev/null` node (mknod 1,3) | the same node | a scratch directory |
//! | `dev-full` | a private `/dev/full` node (mknod 1,7) | the same node | a scratch directory |
//! | `fifo` | a FIFO with a reader | the same FIFO | a scratch directory |
//! | `closed-pipe` | new names | a pipe closed before the command writes | a scratch directory |
//! | `non-utf8` | new names with a 0xff byte | a pipe | a directory named `case-\xff` |
//!
//! Each cell also pins its exit code: a write to a read-only directory or a full
//! device must fail (1), a closed pipe must not (0), and so on. Private device nodes
//! keep the machine's `/dev/null` and `/dev/full` safe from a regression that renames
//! over its output (as root it would replace them).

use crate::common::*;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mlp_train::fsio::TEMP_SUFFIX;

/// Longest a single command may take before the cell counts as a hang.
const CELL_TIMEOUT: Duration = Duration::from_secs(30);

/// A mirror nothing listens on: `download` fails at once.
const DEAD_MIRROR: &str = "http://127.0.0.1:9/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    ReadOnly,
    DevNull,
    DevFull,
    Fifo,
    ClosedPipe,
    NonUtf8,
}

const CASES: [Case; 6] = [
    Case::ReadOnly,
    Case::DevNull,
    Case::DevFull,
    Case::Fifo,
    Case::ClosedPipe,
    Case::NonUtf8,
];

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::ReadOnly => "read-only",
            Case::DevNull => "dev-null",
            Case::DevFull => "dev-full",
            Case::Fifo => "fifo",
            Case::ClosedPipe => "closed-pipe",
            Case::NonUtf8 => "non-utf8",
        }
    }
}

/// What a command writes besides standard output.
#[derive(Clone, Copy)]
enum Writes {
    Nothing,
    /// One file: the case's output file.
    File,
    /// These names in the case's output directory.
    Dir(&'static [&'static str]),
}

struct Cmd {
    name: &'static str,
    args: fn(&Env, &Path) -> Vec<OsString>,
    writes: Writes,
    /// Exit code per case, in the order of [`CASES`].
    expect: [i32; 6],
}

fn os<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(parts: I) -> Vec<OsString> {
    parts
        .into_iter()
        .map(|s| s.as_ref().to_os_string())
        .collect()
}

const TRAIN_FILES: &[&str] = &[
    "checkpoint.ckpt",
    "curves.svg",
    "metrics.csv",
    "model.mlp",
    "summary.json",
];

//                                         read-only, null, full, fifo, closed, non-utf8
const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "train --epochs 1 --limit 200",
        args: |e, out| {
            let mut a = os(["train", "--data"]);
            a.push(e.data.clone().into());
            a.extend(os([
                "--epochs",
                "1",
                "--limit",
                "200",
                "--validation",
                "100",
                "--hidden",
                "8",
                "--out",
            ]));
            a.push(out.into());
            a
        },
        writes: Writes::Dir(TRAIN_FILES),
        expect: [1, 1, 1, 1, 0, 0],
    },
    Cmd {
        name: "split --out",
        args: |e, out| {
            let mut a = os(["split", "--data"]);
            a.push(e.table.clone().into());
            a.extend(os(["--out"]));
            a.push(out.into());
            a
        },
        writes: Writes::Dir(&["test.csv", "train.csv"]),
        expect: [1, 1, 1, 1, 0, 0],
    },
    Cmd {
        name: "predict --rows",
        args: |e, _| {
            os([
                OsStr::new("predict"),
                "--model".as_ref(),
                e.table_model.as_os_str(),
                "--rows".as_ref(),
                e.table.as_os_str(),
                "--data".as_ref(),
                e.table.as_os_str(),
            ])
        },
        writes: Writes::Nothing,
        expect: [0, 0, 1, 0, 0, 0],
    },
    Cmd {
        name: "evaluate",
        args: |e, _| {
            os([
                OsStr::new("evaluate"),
                "--model".as_ref(),
                e.model.as_os_str(),
                "--data".as_ref(),
                e.data.as_os_str(),
            ])
        },
        writes: Writes::Nothing,
        expect: [0, 0, 1, 0, 0, 0],
    },
    Cmd {
        name: "evaluate --json",
        args: |e, _| {
            os([
                OsStr::new("evaluate"),
                "--json".as_ref(),
                "--model".as_ref(),
                e.model.as_os_str(),
                "--data".as_ref(),
                e.data.as_os_str(),
            ])
        },
        writes: Writes::Nothing,
        expect: [0, 0, 1, 0, 0, 0],
    },
    Cmd {
        name: "predict",
        args: |e, _| {
            os([
                OsStr::new("predict"),
                "--model".as_ref(),
                e.model.as_os_str(),
                e.image.as_os_str(),
            ])
        },
        writes: Writes::Nothing,
        expect: [0, 0, 1, 0, 0, 0],
    },
    Cmd {
        name: "predict --show-input",
        args: |e, out| {
            os([
                OsStr::new("predict"),
                "--model".as_ref(),
                e.model.as_os_str(),
                "--show-input".as_ref(),
                out.as_os_str(),
                e.image.as_os_str(),
            ])
        },
        writes: Writes::Dir(&["digit.png.input.png"]),
        expect: [1, 1, 1, 1, 0, 0],
    },
    Cmd {
        name: "show --png",
        args: |e, out| {
            os([
                OsStr::new("show"),
                "--data".as_ref(),
                e.data.as_os_str(),
                "--png".as_ref(),
                out.as_os_str(),
            ])
        },
        writes: Writes::File,
        expect: [1, 0, 1, 0, 0, 0],
    },
    Cmd {
        name: "inspect",
        args: |e, _| os([OsStr::new("inspect"), e.model.as_os_str()]),
        writes: Writes::Nothing,
        expect: [0, 0, 1, 0, 0, 0],
    },
    Cmd {
        name: "quantize --out",
        args: |e, out| {
            os([
                OsStr::new("quantize"),
                "--model".as_ref(),
                e.model.as_os_str(),
                "--data".as_ref(),
                e.data.as_os_str(),
                "--calibration".as_ref(),
                "100".as_ref(),
                "--out".as_ref(),
                out.as_os_str(),
            ])
        },
        writes: Writes::File,
        expect: [1, 0, 1, 0, 0, 0],
    },
    Cmd {
        name: "download --dir (dead mirror)",
        args: |_, out| {
            os([
                OsStr::new("download"),
                "--mirror".as_ref(),
                DEAD_MIRROR.as_ref(),
                "--dir".as_ref(),
                out.as_os_str(),
            ])
        },
        writes: Writes::Dir(&[]),
        expect: [1, 1, 1, 1, 1, 1],
    },
    Cmd {
        name: "bench --rounds 1 --infer 10",
        args: |e, _| {
            os([
                OsStr::new("bench"),
                "--data".as_ref(),
                e.data.as_os_str(),
                "--rounds".as_ref(),
                "1".as_ref(),
                "--infer".as_ref(),
                "10".as_ref(),
            ])
        },
        writes: Writes::Nothing,
        expect: [0, 0, 1, 0, 0, 0],
    },
    Cmd {
        name: "bench --rounds 0",
        args: |e, _| {
            os([
                OsStr::new("bench"),
                "--data".as_ref(),
                e.data.as_os_str(),
                "--rounds".as_ref(),
                "0".as_ref(),
            ])
        },
        writes: Writes::Nothing,
        expect: [1, 1, 1, 1, 1, 1],
    },
    Cmd {
        name: "board info --tcp (nobody)",
        args: |_, _| os(["board", "info", "--tcp", "127.0.0.1:9"]),
        writes: Writes::Nothing,
        expect: [1, 1, 1, 1, 1, 1],
    },
];

/// One case's directory and where its hostile things are.
struct Env {
    case: Case,
    /// Holds the inputs, a sentinel file and (for regular outputs) the outputs.
    dir: PathBuf,
    data: PathBuf,
    model: PathBuf,
    image: PathBuf,
    /// A CSV table (the bundled breast-cancer training file) and a model that fits it.
    table: PathBuf,
    table_model: PathBuf,
    /// The device node or FIFO that outputs go to, if the case has one.
    special: Option<PathBuf>,
    /// An existing output directory holding a sentinel (cases without a special).
    out_dir: PathBuf,
}

impl Env {
    /// The output file for the command `slug`: the special file, or a new name.
    fn out_file(&self, slug: &str) -> PathBuf {
        if let Some(s) = &self.special {
            return s.clone();
        }
        let mut name = format!("{slug}.out").into_bytes();
        if self.case == Case::NonUtf8 {
            name.splice(0..0, *b"\xff-");
        }
        self.dir.join(OsStr::from_bytes(&name))
    }

    fn out_dir(&self) -> PathBuf {
        self.special.clone().unwrap_or_else(|| self.out_dir.clone())
    }
}

/// A read-only tmpfs, unmounted on drop (before its temporary directory goes).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Copies the inputs into `dir`: the bundled data, a small model, one digit as PNG,
/// a sentinel file and an output directory with a sentinel in it.
/// The inputs of every command in `dir`: a data directory, a model, an image, a CSV
/// table and a model for it.
struct Inputs {
    data: PathBuf,
    model: PathBuf,
    image: PathBuf,
    table: PathBuf,
    table_model: PathBuf,
}

fn fill(dir: &Path, out_dir: &Path) -> Inputs {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    for f in fs::read_dir(bundled()).unwrap() {
        let f = f.unwrap().path();
        fs::copy(&f, data.join(f.file_name().unwrap())).unwrap();
    }
    let model = dir.join("model.mlp");
    mlp_train::model::Mlp::zeroed(&[784, 8, 10])
        .unwrap()
        .save(&model)
        .unwrap();
    let image = dir.join("digit.png");
    ok(&run([
        OsStr::new("show"),
        "--data".as_ref(),
        data.as_os_str(),
        "--count".as_ref(),
        "1".as_ref(),
        "--png".as_ref(),
        image.as_os_str(),
    ]));
    let table = dir.join("table.csv");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/breast-cancer/train.csv"),
        &table,
    )
    .unwrap();
    let table_model = dir.join("table.mlp");
    mlp_train::model::Mlp::zeroed(&[30, 8, 2])
        .unwrap()
        .save(&table_model)
        .unwrap();
    fs::write(dir.join("keep.txt"), b"a file that was here before").unwrap();
    fs::create_dir_all(out_dir).unwrap();
    fs::write(out_dir.join("keep.txt"), b"an earlier output").unwrap();
    Inputs {
        data,
        model,
        image,
        table,
        table_model,
    }
}

fn setup(case: Case, root: &Path, mounts: &mut Vec<Mount>) -> Env {
    let dir = match case {
        Case::NonUtf8 => root.join(OsStr::from_bytes(b"case-\xff")),
        _ => root.join(case.name()),
    };
    fs::create_dir(&dir).unwrap();
    if case == Case::ReadOnly {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            mounted || !is_root(),
            "running as root, but mounting a tmpfs failed"
        );
        if mounted {
            mounts.push(Mount(dir.clone()));
        }
    }
    let out_dir = match case {
        Case::NonUtf8 => dir.join(OsStr::from_bytes(b"out-\xff")),
        _ => dir.join("out"),
    };
    let Inputs {
        data,
        model,
        image,
        table,
        table_model,
    } = fill(&dir, &out_dir);
    let special = match case {
        Case::DevNull => Some(device_node(&dir, "null")),
        Case::DevFull => Some(device_node(&dir, "full")),
        Case::Fifo => {
            let fifo = dir.join("pipe");
            assert!(Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success());
            Some(fifo)
        }
        _ => None,
    };
    if case == Case::ReadOnly {
        if mounts.is_empty() {
            // Not root: permissions are enough.
            for d in [&out_dir, &data, &dir] {
                Command::new("chmod").arg("a-w").arg(d).status().unwrap();
            }
        } else {
            assert!(Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        // Really read-only, even to root.
        let probe = fs::write(dir.join("probe"), b"x");
        assert!(probe.is_err(), "{} is writable", dir.display());
    }
    Env {
        case,
        dir,
        data,
        model,
        image,
        table,
        table_model,
        special,
        out_dir,
    }
}

#[derive(Debug, PartialEq)]
enum Entry {
    File(Vec<u8>),
    Dir,
    CharDevice,
    Fifo,
    Other,
}

/// Every entry under `dir` with its kind and, for files, contents.
fn snapshot(dir: &Path, into: &mut BTreeMap<PathBuf, Entry>) {
    for e in fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let kind = fs::symlink_metadata(&path).unwrap().file_type();
        let entry = if kind.is_dir() {
            snapshot(&path, into);
            Entry::Dir
        } else if kind.is_file() {
            Entry::File(fs::read(&path).unwrap())
        } else if kind.is_char_device() {
            Entry::CharDevice
        } else if kind.is_fifo() {
            Entry::Fifo
        } else {
            Entry::Other
        };
        into.insert(path, entry);
    }
}

fn entries(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut map = BTreeMap::new();
    snapshot(dir, &mut map);
    map
}

/// Drains a FIFO until told to stop, whoever opens it for writing and how often.
struct FifoReader {
    stop: Arc<AtomicBool>,
    fifo: PathBuf,
    thread: JoinHandle<usize>,
}

impl FifoReader {
    fn start(fifo: &Path) -> FifoReader {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, fifo) = (stop.clone(), fifo.to_path_buf());
            std::thread::spawn(move || {
                let mut total = 0;
                while !stop.load(Ordering::SeqCst) {
                    // Blocks until a writer opens the FIFO.
                    let mut buf = Vec::new();
                    if let Ok(mut f) = File::open(&fifo) {
                        let _ = f.read_to_end(&mut buf);
                    }
                    total += buf.len();
                }
                total
            })
        };
        FifoReader {
            stop,
            fifo: fifo.to_path_buf(),
            thread,
        }
    }

    /// Stops the reader: opening the FIFO read-write never blocks and wakes a reader
    /// waiting in open. Returns the bytes read.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        while !self.thread.is_finished() {
            let _ = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.fifo);
            std::thread::sleep(Duration::from_millis(5));
        }
        self.thread.join().unwrap()
    }
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    timed_out: bool,
}

/// Runs the binary with `args` in `cwd`, its standard output as the case says,
/// killing it after [`CELL_TIMEOUT`].
fn run_cell(env: &Env, args: &[OsString]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mlp-train"));
    cmd.args(args)
        .current_dir(&env.dir)
        .env_remove("MLP_MNIST_MIRROR")
        .env_remove("MLP_DATA_DIR")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    match env.case {
        Case::DevNull | Case::DevFull | Case::Fifo => {
            let special = env.special.as_ref().unwrap();
            let file = fs::OpenOptions::new().write(true).open(special).unwrap();
            cmd.stdout(file);
        }
        _ => {
            cmd.stdout(Stdio::piped());
        }
    }
    let mut child = cmd.spawn().unwrap();
    // The command's copy of a FIFO's write end must go, or its reader never sees the end.
    drop(cmd);
    let stdout = child.stdout.take();
    let reader = match (env.case, stdout) {
        // The reader is gone before the command writes anything.
        (Case::ClosedPipe, Some(pipe)) => {
            drop(pipe);
            None
        }
        (_, Some(mut pipe)) => Some(std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
        })),
        (_, None) => None,
    };
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > CELL_TIMEOUT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(r) = reader {
        r.join().unwrap();
    }
    Outcome {
        code: status.code(),
        stderr: err_reader.join().unwrap(),
        timed_out,
    }
}

fn temporaries(map: &BTreeMap<PathBuf, Entry>) -> Vec<String> {
    map.keys()
        .filter(|p| p.as_os_str().as_bytes().ends_with(TEMP_SUFFIX.as_bytes()))
        .map(|p| p.display().to_string())
        .collect()
}

/// Runs one cell and returns what went wrong (empty when nothing did) and the cell's
/// text for the table.
fn check_cell(env: &Env, cmd: &Cmd, expect: i32) -> (Vec<String>, String) {
    let slug: String = cmd
        .name
        .split(' ')
        .next()
        .unwrap()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let (target, allowed): (PathBuf, Vec<PathBuf>) = match cmd.writes {
        Writes::Nothing => (PathBuf::new(), vec![]),
        Writes::File => {
            let f = env.out_file(&slug);
            (f.clone(), vec![f])
        }
        Writes::Dir(names) => {
            let d = env.out_dir();
            let files = names.iter().map(|n| d.join(n)).collect();
            (d, files)
        }
    };
    let before = entries(&env.dir);
    let fifo = (env.case == Case::Fifo).then(|| FifoReader::start(env.special.as_ref().unwrap()));
    let outcome = run_cell(env, &(cmd.args)(env, &target));
    if let Some(f) = fifo {
        f.finish();
    }
    let after = entries(&env.dir);

    let mut problems = Vec::new();
    if outcome.timed_out {
        problems.push(format!("hung for {CELL_TIMEOUT:?}"));
    }
    if outcome.code != Some(expect) {
        problems.push(format!(
            "exit {:?}, expected {expect}: {}",
            outcome.code, outcome.stderr
        ));
    }
    if outcome.stderr.contains("panicked") || outcome.stderr.contains("RUST_BACKTRACE") {
        problems.push(format!("panicked: {}", outcome.stderr));
    }
    if outcome.code == Some(1) && outcome.stderr.trim_end().lines().count() != 1 {
        problems.push(format!("not a one-line error: {}", outcome.stderr));
    }
    // Nothing that was there changed: not a byte of a file, not the kind of a node.
    for (path, was) in &before {
        match after.get(path) {
            None => problems.push(format!("lost {}", path.display())),
            Some(now) if now != was => {
                problems.push(format!("changed {} (was {:?})", path.display(), kind(was)))
            }
            Some(_) => {}
        }
    }
    if let Some(special) = &env.special {
        let intact = match env.case {
            Case::Fifo => fs::symlink_metadata(special).is_ok_and(|m| m.file_type().is_fifo()),
            _ => is_char_device(special),
        };
        if !intact {
            problems.push(format!("{} was replaced", special.display()));
        }
    }
    // Only the command's own outputs appeared (no temporaries, no stray directories).
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        if !allowed.contains(path) {
            problems.push(format!("left {}", path.display()));
        }
    }
    problems.extend(temporaries(&after).into_iter().map(|t| format!("left {t}")));
    // A success that writes regular files wrote them all.
    if outcome.code == Some(0) && env.special.is_none() {
        for path in &allowed {
            if !after.contains_key(path) {
                problems.push(format!("succeeded without writing {}", path.display()));
            }
        }
    }
    let cell = match (outcome.timed_out, outcome.code, problems.is_empty()) {
        (true, _, _) => "HANG".to_owned(),
        (_, Some(c), true) => format!("{c}"),
        (_, Some(c), false) => format!("{c} FAIL"),
        (_, None, _) => "signal FAIL".to_owned(),
    };
    (problems, cell)
}

fn kind(e: &Entry) -> &'static str {
    match e {
        Entry::File(_) => "a file",
        Entry::Dir => "a directory",
        Entry::CharDevice => "a character device",
        Entry::Fifo => "a FIFO",
        Entry::Other => "something else",
    }
}

#[test]
fn every_command_against_every_hostile_target() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut mounts = Vec::new();
    let envs: Vec<Env> = CASES
        .iter()
        .map(|&c| setup(c, tmp.path(), &mut mounts))
        .collect();

    let mut failures = Vec::new();
    let mut table = format!(
        "| command | {} |\n|---|{}\n",
        CASES.map(Case::name).join(" | "),
        "---|".repeat(CASES.len())
    );
    for cmd in COMMANDS {
        let mut row = format!("| {} |", cmd.name);
        for (i, env) in envs.iter().enumerate() {
            let (problems, cell) = check_cell(env, cmd, cmd.expect[i]);
            for p in problems {
                failures.push(format!("{} × {}: {p}", cmd.name, env.case.name()));
            }
            row.push_str(&format!(" {cell} |"));
        }
        table.push_str(&row);
        table.push('\n');
    }
    drop(mounts);
    eprintln!(
        "exit codes ({} cells, {:.1} s):\n{table}",
        COMMANDS.len() * CASES.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Feeds `bytes` to a FIFO for one reader (a reader that never comes is woken by
/// [`FifoWriter::finish`]).
struct FifoWriter {
    fifo: PathBuf,
    thread: JoinHandle<()>,
}

impl FifoWriter {
    fn start(fifo: &Path, bytes: Vec<u8>) -> FifoWriter {
        let thread = {
            let fifo = fifo.to_path_buf();
            std::thread::spawn(move || {
                use std::io::Write;
                // Blocks until a reader opens the FIFO.
                if let Ok(mut f) = fs::OpenOptions::new().write(true).open(&fifo) {
                    let _ = f.write_all(&bytes);
                }
            })
        };
        FifoWriter {
            fifo: fifo.to_path_buf(),
            thread,
        }
    }

    fn finish(self) {
        while !self.thread.is_finished() {
            // Read-write never blocks, and lets a writer waiting in open through.
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.fifo);
            std::thread::sleep(Duration::from_millis(5));
            drop(f);
        }
        self.thread.join().unwrap();
    }
}

/// Special files as inputs: a model, a checkpoint or an image that is `/dev/null`
/// (empty), `/dev/full` (endless zeros, as `/dev/zero`) or a FIFO carrying a good
/// file (`--model <(...)`). Each command reads only what it needs: endless zeros are
/// refused, not read until memory runs out. The commands run with 1 GiB of address
/// space, so a regression cannot take the machine's memory.
#[test]
fn special_files_as_inputs_are_read_with_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = dir.join("model.mlp");
    mlp_train::model::Mlp::zeroed(&[784, 8, 10])
        .unwrap()
        .save(&model)
        .unwrap();
    let image = dir.join("digit.png");
    ok(&run([
        OsStr::new("show"),
        "--count".as_ref(),
        "1".as_ref(),
        "--png".as_ref(),
        image.as_os_str(),
    ]));
    let run_dir = dir.join("run");
    ok(&run([
        OsStr::new("train"),
        "--quiet".as_ref(),
        "--epochs".as_ref(),
        "1".as_ref(),
        "--limit".as_ref(),
        "200".as_ref(),
        "--hidden".as_ref(),
        "8".as_ref(),
        "--out".as_ref(),
        run_dir.as_os_str(),
    ]));
    let checkpoint = run_dir.join("checkpoint.ckpt");
    let null = device_node(dir, "null");
    let full = device_node(dir, "full");
    let fifo = dir.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let m = model.as_os_str();
    let img = image.as_os_str();
    // (command with X for the special file, what the FIFO carries, exit codes for
    // null, full, FIFO, what the message for full says)
    type Row<'a> = (Vec<&'a OsStr>, &'a Path, [i32; 3], &'a str);
    let x = OsStr::new("X");
    let rows: Vec<Row> = vec![
        (
            vec!["inspect".as_ref(), x],
            &model,
            [1, 1, 0],
            "not a valid model file",
        ),
        (
            vec!["evaluate".as_ref(), "--model".as_ref(), x],
            &model,
            [1, 1, 0],
            "not a valid model file",
        ),
        (
            vec!["predict".as_ref(), "--model".as_ref(), x, img],
            &model,
            [1, 1, 0],
            "not a valid model file",
        ),
        (
            vec!["predict".as_ref(), "--model".as_ref(), m, x],
            &image,
            // Decoding an image needs to seek: "cannot read image: Illegal seek".
            [1, 1, 1],
            "not a readable PNG or PGM image",
        ),
        (
            vec![
                "quantize".as_ref(),
                "--model".as_ref(),
                x,
                "--calibration".as_ref(),
                "100".as_ref(),
                "--out".as_ref(),
                "int8.mlp".as_ref(),
            ],
            &model,
            [1, 1, 0],
            "not a valid model file",
        ),
        (
            vec![
                "train".as_ref(),
                "--resume".as_ref(),
                x,
                "--out".as_ref(),
                "resumed".as_ref(),
            ],
            &checkpoint,
            [1, 1, 1],
            "must be a regular file",
        ),
    ];
    let mut failures = Vec::new();
    for (args, feed, expect, full_says) in &rows {
        for (i, special) in [&null, &full, &fifo].into_iter().enumerate() {
            let args: Vec<&OsStr> = args
                .iter()
                .map(|a| if *a == x { special.as_os_str() } else { a })
                .collect();
            let name = format!("{:?}", args);
            let writer = (i == 2).then(|| FifoWriter::start(&fifo, fs::read(feed).unwrap()));
            let mut child = Command::new("sh")
                .arg("-c")
                .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
                .arg(env!("CARGO_BIN_EXE_mlp-train"))
                .args(&args)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let start = Instant::now();
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                if start.elapsed() > CELL_TIMEOUT {
                    let _ = child.kill();
                    failures.push(format!("{name}: hung"));
                    break child.wait().unwrap();
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            if let Some(w) = writer {
                w.finish();
            }
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            if status.code() != Some(expect[i]) {
                failures.push(format!(
                    "{name}: exit {:?}, expected {}: {err}",
                    status.code(),
                    expect[i]
                ));
            }
            if err.contains("panicked") || err.contains("memory") {
                failures.push(format!("{name}: {err}"));
            }
            if i == 1 && expect[i] == 1 && !err.contains(full_says) {
                failures.push(format!("{name}: says {err}, not {full_says:?}"));
            }
        }
    }
    assert!(is_char_device(&null) && is_char_device(&full));
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
