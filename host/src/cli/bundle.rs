//! `weft export` writes an instance's replay bundle; `weft replay` replays one offline, with
//! no server and no database, against its own component or another one.

use super::client::{Client, segment, timeline_line};
use anyhow::{Context as _, bail};
use std::path::Path;
use weft::runtime::{Bundle, Replayed};

/// Writes instance `id`'s bundle to `out`.
pub(super) async fn export(
    client: &Client,
    id: &str,
    out: &Path,
    redact: bool,
) -> anyhow::Result<()> {
    let query = [("redact", redact.to_string())];
    let v = client
        .get(&format!("/instances/{}/bundle", segment(id)), &query)
        .await?;
    let text = serde_json::to_vec(&v)?;
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{}: {} run(s), {} bytes{}",
        out.display(),
        v["runs"].as_array().map_or(0, Vec::len),
        text.len(),
        if redact { ", payloads redacted" } else { "" }
    );
    Ok(())
}

/// Replays the bundle in `file` against its component, or the one in `component`: prints
/// each run's timeline, what the guest logged and whether the code made the recorded calls;
/// fails naming the first divergence.
pub(super) async fn replay(
    file: &Path,
    component: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let bundle = Bundle::parse(&text).with_context(|| file.display().to_string())?;
    let other = component
        .map(|c| std::fs::read(c).with_context(|| format!("reading {}", c.display())))
        .transpose()?;
    let against = match (component, &other) {
        (Some(path), Some(bytes)) => format!(
            "{} ({})",
            path.display(),
            weft::history::digest_of(bytes).short()
        ),
        _ => format!("its own component ({})", short(&bundle.component.digest)),
    };
    let results = bundle.replay(other).await?;
    if json {
        let runs: Vec<_> = bundle
            .runs
            .iter()
            .zip(&results)
            .map(|(run, r)| {
                serde_json::json!({
                    "generation": run.generation,
                    "recordedCalls": r.recorded,
                    "replayedCalls": r.calls,
                    "divergence": r.divergence,
                    "logs": r.logs,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "instanceId": bundle.instance_id, "runs": runs })
        );
    } else {
        println!(
            "{} ({}), {}, replayed against {against}{}",
            bundle.instance_id,
            bundle.name,
            bundle.runtime_status.as_str(),
            if bundle.redacted {
                "; payloads redacted: calls are matched by kind and name"
            } else {
                ""
            }
        );
        for (run, r) in bundle.runs.iter().zip(&results) {
            println!("run {}", run.generation);
            for e in &run.history {
                let line = timeline_line(&weft::api::history_json(e));
                match e.event.call_pos() {
                    // The position a divergence names.
                    Some(pos) => println!("  {line}  (position {pos})"),
                    None => println!("  {line}"),
                }
            }
            for line in &r.logs {
                println!("  log: {line}");
            }
            println!("  {}", verdict(r, bundle.redacted));
        }
    }
    let diverged = bundle
        .runs
        .iter()
        .zip(&results)
        .find(|(_, r)| diverges(r, bundle.redacted));
    if let Some((run, r)) = diverged {
        bail!(
            "run {} diverges: {}",
            run.generation,
            r.divergence.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// Whether a run's replay found the code making other calls. The replay of a redacted run
/// may stop early where the guest cannot read a hash as the payload it expects: that is no
/// divergence, only as far as the bundle can tell.
fn diverges(r: &Replayed, redacted: bool) -> bool {
    match &r.divergence {
        None => false,
        Some(d) => !redacted || d.starts_with("nondeterminism: at position"),
    }
}

fn verdict(r: &Replayed, redacted: bool) -> String {
    match &r.divergence {
        None => format!("replays: the code made all {} recorded calls", r.recorded),
        Some(d) if diverges(r, redacted) => format!("diverges: {d}"),
        Some(d) => format!(
            "replays by kind and name for {} of {} recorded calls; then the guest stopped on a \
             redacted payload: {d}",
            r.calls, r.recorded
        ),
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}
