//! Running one stage on several threads.

/// Runs `work` on `workers` threads named `name-N` and collects what each
/// returned; the first error wins. One worker runs on the calling thread.
pub fn run_pool<R: Send>(
    name: &str,
    workers: usize,
    work: impl Fn() -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    if workers <= 1 {
        return Ok(vec![work()?]);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|i| {
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn_scoped(s, &work)
            })
            .collect();
        let mut out = Vec::with_capacity(workers);
        let mut first_error = None;
        for h in handles {
            let outcome = match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a {name} thread panicked"))),
                Err(e) => Err(anyhow::anyhow!("cannot start a {name} thread: {e}")),
            };
            match outcome {
                Ok(r) => out.push(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}
