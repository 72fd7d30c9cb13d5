//! A real one-node Slurm cluster on 127.0.0.1 for the tests: its own
//! `munged`, `slurmctld` and `slurmd`, started by the test with every file
//! (`slurm.conf`, state, spool, pid files, logs, the MUNGE key and socket)
//! in one folder under the test target folder, and stopped when the
//! [`Cluster`] is dropped. Clients get the cluster through `SLURM_CONF`.
//!
//! Debian's `slurm-wlm` (22.05) and `munge` packages provide the daemons;
//! when they are missing and the test runs as root with `apt-get`, they are
//! installed on first use (as `scripts/ci-deps` does); otherwise the test
//! fails saying what to install. There is no systemd here: the daemons run
//! in the foreground as children of the test, which kills them by pid.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The programs the cluster and the tests use.
const PROGRAMS: [&str; 9] = [
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sinfo",
    "squeue",
    "scontrol",
    "scancel",
];

/// The apt packages that provide [`PROGRAMS`] on Debian and Ubuntu.
const PACKAGES: [&str; 2] = ["slurm-wlm", "munge"];

/// A running one-node cluster; dropping it cancels its jobs and stops it.
pub struct Cluster {
    /// Everything of the cluster's lives here.
    pub dir: PathBuf,
    /// Its `slurm.conf` (what `SLURM_CONF` names for its clients).
    pub conf: PathBuf,
    /// The node's name (this host's short name).
    pub node: String,
    /// The MUNGE socket's folder, under the system's temporary folder.
    socket_dir: PathBuf,
    daemons: Vec<(&'static str, Child)>,
}

/// Where `program` is: on PATH, else in the sbin folders (which a non-login
/// root shell may leave off PATH).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn missing_programs() -> Vec<&'static str> {
    PROGRAMS
        .into_iter()
        .filter(|p| which(p).is_none())
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure Slurm and MUNGE are installed: installs them with apt-get
/// (under a file lock, so tests running at once install once) when they are
/// missing and this is root on a system with apt-get; panics saying what to
/// install otherwise.
pub fn ensure_installed() {
    let missing = missing_programs();
    if missing.is_empty() {
        return;
    }
    let apt = which("apt-get");
    assert!(
        is_root() && apt.is_some(),
        "the Slurm tests need a one-node Slurm and MUNGE, and {} are missing; \
         this test installs them itself only as root on a system with apt-get. \
         Install them (Debian/Ubuntu: `apt-get install slurm-wlm munge`, or run \
         scripts/ci-deps as root; elsewhere your distribution's Slurm 22+ and MUNGE \
         packages, with slurmctld, slurmd and the client commands) and run the test as root.",
        missing.join(", ")
    );
    let lock = std::fs::File::create(std::env::temp_dir().join("docpipe-slurm-install.lock"))
        .expect("create the install lock file");
    fs4::fs_std::FileExt::lock_exclusive(&lock).expect("take the install lock");
    let missing = missing_programs();
    if missing.is_empty() {
        return;
    }
    let apt = apt.unwrap();
    eprintln!(
        "slurm: installing {} with apt-get (missing: {})",
        PACKAGES.join(" "),
        missing.join(", ")
    );
    let install = || {
        Command::new(&apt)
            .args(["-qq", "-o", "DPkg::Lock::Timeout=600", "install", "-y"])
            .arg("--no-install-recommends")
            .args(PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("apt-get runs")
    };
    let mut out = install();
    if !out.status.success() {
        // Package lists may be missing or stale in a fresh image.
        let update = Command::new(&apt)
            .args(["-qq", "-o", "DPkg::Lock::Timeout=600", "update"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("apt-get update runs");
        assert!(
            update.status.success(),
            "apt-get update failed: {}",
            String::from_utf8_lossy(&update.stderr)
        );
        out = install();
    }
    assert!(
        out.status.success(),
        "apt-get install {} failed: {}",
        PACKAGES.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = missing_programs();
    assert!(
        missing.is_empty(),
        "still missing after installing {}: {}",
        PACKAGES.join(" "),
        missing.join(", ")
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// This host's short name, which `SlurmctldHost` and `NodeName` must carry.
fn short_hostname() -> String {
    let out = Command::new("hostname").arg("-s").output();
    let name = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    assert!(!name.is_empty(), "cannot tell this host's name");
    name
}

/// Memory to declare for the node, in MB: half of this machine's.
fn node_memory_mb() -> u64 {
    let kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(4_000_000);
    (kb / 1024 / 2).max(1000)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Daemons of an earlier run in `dir` that did not stop (a test killed
/// before its drop ran): killed by the pids it recorded, once their command
/// line shows they belong to `dir`.
fn kill_leftovers(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join("daemons.pids")) else {
        return;
    };
    let marker = dir.to_string_lossy().into_owned();
    for pid in text.split_whitespace() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&marker) {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

impl Cluster {
    /// Starts a cluster whose files live in the test target folder under
    /// `cluster-<name>`, and waits until its node is idle.
    pub fn start(name: &str) -> Cluster {
        ensure_installed();
        assert!(
            is_root(),
            "the Slurm tests run slurmd, which must run as root to start jobs: run them as root"
        );
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cluster-{name}"));
        kill_leftovers(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["munge", "run", "state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // munged wants its key private and its socket reachable by all:
        // every folder above the socket executable by all, which a clone
        // in a private folder (`mktemp -d`, a 0700 home) is not. So the
        // socket lives in a folder of its own under the temporary folder.
        set_mode(&dir, 0o755);
        set_mode(&dir.join("run"), 0o755);
        set_mode(&dir.join("munge"), 0o700);
        let socket_dir =
            std::env::temp_dir().join(format!("docpipe-munge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&socket_dir);
        std::fs::create_dir_all(&socket_dir).unwrap();
        set_mode(&socket_dir, 0o755);
        let key = dir.join("munge/munge.key");
        let made = Command::new(which("mungekey").unwrap())
            .arg("--create")
            .arg(format!("--keyfile={}", key.display()))
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "mungekey failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let socket = socket_dir.join("munge.socket");
        let node = short_hostname();
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let conf = dir.join("slurm.conf");
        let d = dir.display();
        std::fs::write(
            &conf,
            format!(
                "# A one-node test cluster on 127.0.0.1 (tests/common/slurm.rs).\n\
                 ClusterName=docpipetest\n\
                 SlurmctldHost={node}(127.0.0.1)\n\
                 SlurmctldPort={ctld_port}\n\
                 SlurmdPort={slurmd_port}\n\
                 SlurmUser=root\n\
                 SlurmdUser=root\n\
                 AuthType=auth/munge\n\
                 CredType=cred/munge\n\
                 # cred_expire also sets how long a requeued job waits (default 120 s)\n\
                 AuthInfo=socket={socket},cred_expire=10\n\
                 StateSaveLocation={d}/state\n\
                 SlurmdSpoolDir={d}/spool\n\
                 SlurmctldPidFile={d}/run/slurmctld.pid\n\
                 SlurmdPidFile={d}/run/slurmd.pid\n\
                 SlurmctldLogFile={d}/log/slurmctld.log\n\
                 SlurmdLogFile={d}/log/slurmd.log\n\
                 ProctrackType=proctrack/linuxproc\n\
                 TaskPlugin=task/none\n\
                 SelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_Core\n\
                 MpiDefault=none\n\
                 JobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\n\
                 SchedulerParameters=sched_interval=2,bf_interval=1\n\
                 SlurmdParameters=config_overrides\n\
                 ReturnToService=2\n\
                 MinJobAge=600\n\
                 KillWait=10\n\
                 MailProg=/bin/true\n\
                 NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN\n\
                 PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                socket = socket.display(),
                ctld_port = free_port(),
                slurmd_port = free_port(),
                mem = node_memory_mb(),
            ),
        )
        .unwrap();
        let mut cluster = Cluster {
            dir: dir.clone(),
            conf: conf.clone(),
            node: node.clone(),
            socket_dir,
            daemons: Vec::new(),
        };
        let mut munged = Command::new(which("munged").unwrap());
        munged
            .arg("--foreground")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={d}/run/munged.pid"))
            .arg(format!("--seed-file={d}/munge/munged.seed"))
            .arg(format!("--log-file={d}/log/munged.log"));
        cluster.spawn("munged", munged);
        cluster.wait_for("the MUNGE socket", Duration::from_secs(20), |_| {
            socket.exists()
        });
        let mut ctld = Command::new(which("slurmctld").unwrap());
        ctld.args(["-D", "-i", "-f"]).arg(&conf);
        cluster.spawn("slurmctld", ctld);
        let mut slurmd = Command::new(which("slurmd").unwrap());
        slurmd.args(["-D", "-N", &node, "-f"]).arg(&conf);
        cluster.spawn("slurmd", slurmd);
        cluster.wait_for("the node to be idle", Duration::from_secs(60), |c| {
            let o = c.command("sinfo").args(["-h", "-N", "-o", "%t"]).output();
            o.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        cluster
    }

    /// A Slurm client command (`sbatch`, `squeue`, ...) for this cluster.
    pub fn command(&self, program: &str) -> Command {
        let path = which(program).unwrap_or_else(|| panic!("{program} is not installed"));
        let mut c = Command::new(path);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Runs a client command to its end, panicking (with the cluster's logs)
    /// when it fails to start or runs past `timeout`.
    pub fn run(&self, mut cmd: Command, timeout: Duration) -> Output {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(timeout) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!(
                    "{cmd:?} still running after {timeout:?}\n{}",
                    self.diagnostics()
                );
            }
        }
    }

    /// `squeue` for the cluster, the end of its daemons' logs and the job logs
    /// under `dir`, for assertion messages.
    pub fn diagnostics(&self) -> String {
        let squeue = self
            .command("squeue")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut s = format!("--- squeue ---\n{squeue}");
        for name in [
            "munged.out",
            "slurmctld.out",
            "slurmctld.log",
            "slurmd.out",
            "slurmd.log",
        ] {
            let text = std::fs::read_to_string(self.dir.join("log").join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            s.push_str(&format!("--- {name} (end) ---\n{tail}\n"));
        }
        s
    }

    /// Starts a daemon in the foreground, its output to `log/<name>.out`,
    /// and records its pid.
    fn spawn(&mut self, name: &'static str, mut cmd: Command) {
        let log =
            || std::fs::File::create(self.dir.join("log").join(format!("{name}.out"))).unwrap();
        let child = cmd
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(log())
            .stderr(log())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push((name, child));
        let pids: Vec<String> = self
            .daemons
            .iter()
            .map(|(_, c)| c.id().to_string())
            .collect();
        std::fs::write(self.dir.join("daemons.pids"), pids.join("\n")).unwrap();
    }

    /// Waits until `ready`, failing when a daemon exits or `timeout` passes.
    fn wait_for(&mut self, what: &str, timeout: Duration, ready: impl Fn(&Cluster) -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready(self) {
            for i in 0..self.daemons.len() {
                let (name, child) = &mut self.daemons[i];
                if let Ok(Some(status)) = child.try_wait() {
                    let name = *name;
                    panic!(
                        "{name} of the test cluster exited ({status}) while waiting for {what}\n{}",
                        self.diagnostics()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Cancel what still runs, so that no job step outlives the cluster.
        let _ = self
            .command("scancel")
            .args(["--partition", "test"])
            .output();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let busy = self
                .command("squeue")
                .args(["-h", "-t", "PD,R,CG,S"])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty());
            if !busy {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        for (_, child) in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, child) in self.daemons.iter_mut().rev() {
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.socket_dir);
    }
}
