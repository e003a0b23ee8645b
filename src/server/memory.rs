//! What the server gives back once it is up: the heap that opening the store left free,
//! and the mappings of the code that only start-up ran.

/// Opening the store parses and checks RocksDB's options of each column family, which
/// leaves a few MiB of freed C++ allocations in the middle of glibc's heap, where glibc
/// keeps them; they are given back to the kernel once the server is up.
#[cfg(target_env = "gnu")]
pub fn return_start_up_heap() {
    // SAFETY: malloc_trim only releases free memory of glibc's heap; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
pub fn return_start_up_heap() {}

/// How long after start-up [`release_start_up_code`] runs: by then the background
/// workers have made their first passes, whose code is start-up code as well.
pub const START_UP_SETTLED: std::time::Duration = std::time::Duration::from_secs(5);

/// Unmaps the server's own code from the process, to be mapped again page by page as it
/// runs. Start-up (configuration, opening RocksDB, loading keys) touches about 17 MiB of
/// the binary's code, most of which never runs again, and the kernel maps 64 KiB around
/// each page that faults: an idle server kept 17–19 MiB of code mapped and counted in its
/// resident size, the figure depending on how the linker happened to lay functions out.
/// The pages stay in the page cache (they are the file's), so running code again costs a
/// minor fault, not a read from disk; what is no longer mapped is what the kernel may
/// reclaim first under memory pressure. A debugger's breakpoints or a uprobe placed in
/// the code before this runs (the first five seconds) are private copies of their pages
/// and go with them: place them later.
#[cfg(target_os = "linux")]
pub fn release_start_up_code() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for (start, end) in code_mappings(&maps, &exe.to_string_lossy()) {
        // SAFETY: the range is a whole mapping of the executable's code, read-only and
        // backed by the file: dropping its pages loses nothing, and a thread running
        // there meanwhile faults the page back in from the page cache.
        let result =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if result != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not release the start-up code's pages"
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn release_start_up_code() {}

/// The address ranges of `exe`'s executable mappings in a `/proc/PID/maps` text.
fn code_mappings(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            // offset, device, inode, then the path (which may contain spaces).
            let path = fields.skip(3).collect::<Vec<_>>().join(" ");
            if perms != "r-xp" || path != exe {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_code_mappings_are_found() {
        let maps = "\
55d0c0000000-55d0c0a00000 r--p 00000000 fe:01 123 /usr/bin/hearth
55d0c0a00000-55d0c2000000 r-xp 00a00000 fe:01 123 /usr/bin/hearth
55d0c2000000-55d0c2100000 r--p 02000000 fe:01 123 /usr/bin/hearth
7f0000000000-7f0000100000 r-xp 00028000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000300000 r-xp 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
";
        assert_eq!(
            code_mappings(maps, "/usr/bin/hearth"),
            vec![(0x55d0c0a00000, 0x55d0c2000000)]
        );
        assert!(code_mappings(maps, "/usr/bin/other").is_empty());
    }

    /// Resident KiB of this process's own code mappings.
    fn code_resident_kib(exe: &str) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_code = false;
        let mut kib = 0;
        for line in smaps.lines() {
            let Some(first) = line.split_whitespace().next() else {
                continue;
            };
            if !first.ends_with(':') {
                // A mapping's header line: its range, permissions, … path.
                in_code = !code_mappings(line, exe).is_empty();
            } else if first == "Rss:" && in_code {
                let value = line["Rss:".len()..].trim().trim_end_matches("kB").trim();
                kib += value.parse::<u64>().unwrap();
            }
        }
        kib
    }

    #[test]
    fn released_code_is_unmapped_and_mapped_again_as_it_runs() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_string_lossy();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        // Every page of this test binary's code read, so all of it is resident.
        let mut sum = 0u8;
        for (start, end) in code_mappings(&maps, &exe) {
            for page in (start..end).step_by(4096) {
                // SAFETY: a readable mapping of this process, read a byte per page.
                sum = sum.wrapping_add(unsafe { std::ptr::read_volatile(page as *const u8) });
            }
        }
        std::hint::black_box(sum);
        let before = code_resident_kib(&exe);
        release_start_up_code();
        // The code that runs from here (reading smaps) is mapped again as it runs.
        let after = code_resident_kib(&exe);
        assert!(
            after * 2 < before,
            "resident code {before} KiB before, {after} KiB after"
        );
    }
}
