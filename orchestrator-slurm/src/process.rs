//! Whether a local process is still the one that was recorded: its pid alone is not
//! enough (pids are reused, and a zombie has a `/proc` entry but runs nothing).

/// The start time of process `pid` (field 22 of `/proc/PID/stat`, in clock ticks since
/// boot), which with the pid names one process for the life of the machine.
#[must_use]
pub fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&stat, 19)
}

/// Whether process `pid` runs, is not a zombie, and (when `start_time` is given) is the
/// process that had that start time.
#[must_use]
pub fn alive(pid: u32, start_time: Option<&str>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat_field(&stat, 0);
    if matches!(state.as_deref(), Some("Z" | "X")) {
        return false;
    }
    start_time.is_none_or(|t| stat_field(&stat, 19).as_deref() == Some(t))
}

/// The `n`th field after the parenthesised command name (0: the state).
fn stat_field(stat: &str, n: usize) -> Option<String> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(n).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not_mistaken_for_it() {
        let me = std::process::id();
        let started = start_time(me).expect("our own start time");
        assert!(alive(me, Some(&started)));
        assert!(alive(me, None));
        assert!(
            !alive(me, Some("1")),
            "another start time is another process"
        );
    }

    #[test]
    fn an_ended_process_is_dead_even_while_it_is_a_zombie() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let started = start_time(pid);
        // Not reaped yet: a zombie once it exits.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!alive(pid, started.as_deref()), "a zombie runs nothing");
        child.wait().unwrap();
        assert!(!alive(pid, started.as_deref()));
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_skipped() {
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19";
        assert_eq!(stat_field(stat, 0).as_deref(), Some("S"));
        assert_eq!(stat_field(stat, 19).as_deref(), Some("777"));
    }
}
