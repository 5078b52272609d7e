//! The child processes of a process, read from `/proc`: a store node is a supervisor with a
//! `dataplane` and an `agent` child (`docs/node-process.md`), which fault tests kill one by
//! one.

/// The live (not zombie) children of `pid`: their pids and command lines (arguments
/// separated by single spaces).
pub fn children(pid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // After the parenthesised name (which may hold anything): state, ppid, ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) && state != Some("Z") {
            let cmd = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            out.push((child, cmd.trim().to_string()));
        }
    }
    out
}

/// The pid of the child of `pid` whose first argument is `arg` (`dataplane`, `agent`).
pub fn child_with_first_arg(pid: u32, arg: &str) -> Option<u32> {
    children(pid)
        .into_iter()
        .find(|(_, cmd)| cmd.split(' ').nth(1) == Some(arg))
        .map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_child_is_found_by_its_first_argument() {
        // A first argument no other test's child has.
        let arg = format!("{}.{}", 30, std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg(&arg)
            .spawn()
            .unwrap();
        let me = std::process::id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            match child_with_first_arg(me, &arg) {
                Some(p) => break Some(p),
                None if std::time::Instant::now() < deadline => {
                    assert!(
                        child.try_wait().unwrap().is_none(),
                        "the child exited early"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                None => break None,
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, Some(child.id()));
        assert_eq!(child_with_first_arg(me, "no-such-argument"), None);
    }
}
