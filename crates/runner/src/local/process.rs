//! How a submitter process is tied to the broker: its own process group, so that stopping it
//! reaches everything it started, and (on Linux) a parent-death signal, so that it does not
//! outlive a broker that was killed.
//!
//! A submitter that outlived its broker would race the one the restarted broker starts for
//! the same pinned Flink job id. The parent-death signal reaches the `flink` launcher (which
//! execs the JVM); the Python driver the JVM started cannot submit anything without it.

use std::time::Duration;

use tokio::process::{Child, Command};
use tracing::warn;

use flinkbroker_model::job::JobId;

/// Puts the child in a process group of its own (its id is the child's pid) and, on Linux,
/// has the kernel SIGKILL it when the thread that spawns it exits.
///
/// That thread must live as long as the broker: spawn from a runtime worker thread (or the
/// runtime's own thread), which exits only when the runtime shuts down, never from
/// `spawn_blocking`, whose idle threads exit after a while and would kill the submitter.
pub(super) fn tie_to_broker(command: &mut Command) {
    command.process_group(0);
    #[cfg(target_os = "linux")]
    die_with_the_broker(command);
}

#[cfg(target_os = "linux")]
fn die_with_the_broker(command: &mut Command) {
    let broker = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it makes two system calls (prctl, getppid), reads errno, and neither
    // allocates nor takes a lock.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // A broker that died before prctl ran sends no signal: the child was re-parented.
            if u32::try_from(libc::getppid()) != Ok(broker) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Stops a child and everything in its process group: SIGTERM first, so that `flink`'s
/// shutdown hooks stop the Python driver it started (a SIGKILL of the JVM leaves the driver
/// running), then SIGKILL after `grace`.
pub(super) async fn stop(job_id: JobId, child: &mut Child, grace: Duration) {
    // Until the child is reaped its pid cannot be reused, so it still names the child's
    // group; only `child` reaps it. Once it is reaped the group is not signalled again.
    if let Some(pid) = child.id()
        && signal_group(pid, libc::SIGTERM)
    {
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(_)) => return,
            Ok(Err(error)) => {
                warn!(job_id = %job_id, %error, "cannot wait for the stopped submitter");
            }
            Err(_) => {
                if !signal_group(pid, libc::SIGKILL) {
                    warn!(job_id = %job_id, "cannot kill the submitter's process group");
                }
            }
        }
    }
    if let Err(error) = child.kill().await {
        warn!(job_id = %job_id, %error, "cannot kill the submitter");
    }
}

/// Sends `signal` to the process group whose id is `pgid`; false when it could not be sent.
fn signal_group(pgid: u32, signal: libc::c_int) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    // SAFETY: kill(2) takes no pointers; a negative pid addresses the group.
    unsafe { libc::kill(-pgid, signal) == 0 }
}
