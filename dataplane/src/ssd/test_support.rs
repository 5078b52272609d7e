//! Unit-test help: a glommio executor with a DMA file.

use glommio::io::DmaFile;

/// Runs `f` on an executor (small io memory, as a shard's) with a DMA file in a directory
/// of its own, `name`, under the temporary directory; skipped, and said so, where that file
/// system refuses O_DIRECT.
pub(super) fn on_file<F>(name: &str, f: impl FnOnce(DmaFile) -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("ssd-unit-{name}-{}", std::process::id()));
    glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(async move || {
            std::fs::create_dir_all(&dir).unwrap();
            let file = glommio::io::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .dma_open(dir.join("f"))
                .await;
            match file {
                Ok(file) => f(file).await,
                Err(e) => eprintln!("SKIPPED: no DMA file in {}: {e}", dir.display()),
            }
            let _ = std::fs::remove_dir_all(&dir);
        })
        .expect("executor starts")
        .join()
        .expect("executor ends");
}
