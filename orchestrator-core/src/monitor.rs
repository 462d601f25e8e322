//! Monitoring series: what a service job sampled into `monitor.csv` (its processes'
//! CPU and memory and the node's, from /proc; its GPUs through `nvidia-smi`; the CPU
//! packages' energy counters from RAPL, where the node lets the job read them), parsed
//! into series and a summary for the report.
//!
//! The file, written by the job script (`orchestrator-slurm/templates/header.hbs`):
//!
//! ```text
//! # orchestrator-monitor 1 clk_tck=100 page_size=4096 interval_s=5
//! proc,<unix time>,<CPU ticks of the job's processes>,<resident pages>,<processes>
//! node,<unix time>,<busy CPU ticks>,<idle CPU ticks>,<MemTotal kB>,<MemAvailable kB>
//! gpu,<a line of nvidia-smi --query-gpu=… --format=csv, its header included>
//! rapl,<unix time>,<zone: intel-rapl:N>,<its name: package-N>,<energy_uj>,<max_energy_range_uj>
//! ```

use serde::Serialize;

/// One sample of the job's own processes.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ProcessSample {
    /// Seconds since the first sample.
    pub t_s: f64,
    /// CPU used since the previous sample, in percent of one core (200 = two cores).
    pub cpu_percent: f64,
    /// Resident memory of all its processes, MB.
    pub rss_mb: f64,
    /// How many processes.
    pub processes: u32,
}

/// One sample of the node.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct NodeSample {
    /// Seconds since the first sample.
    pub t_s: f64,
    /// Busy share of all the node's CPUs since the previous sample, percent.
    pub cpu_percent: f64,
    /// Memory in use (total − available), MB.
    pub memory_used_mb: f64,
    /// Memory in all, MB.
    pub memory_total_mb: f64,
}

/// One reading of a CPU package's RAPL energy counter
/// (`/sys/class/powercap/intel-rapl:N/energy_uj`), which counts µJ up to
/// `max_energy_range_uj` and starts again from 0.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RaplSample {
    /// When it was read, seconds since the epoch.
    pub unix_s: f64,
    /// The zone (`intel-rapl:0`).
    pub zone: String,
    /// Its name (`package-0`).
    pub name: String,
    /// The counter, µJ.
    pub energy_uj: f64,
    /// Where the counter wraps, µJ.
    pub max_energy_range_uj: f64,
}

/// One row of `nvidia-smi --query-gpu=… --format=csv`. A field the query did not ask
/// for, or that the board reports as `[N/A]` or `[Not Supported]`, is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct GpuSample {
    /// As nvidia-smi printed it (`2026/11/28 14:21:44.368`).
    pub timestamp: String,
    /// Seconds since the first GPU sample.
    pub t_s: f64,
    /// When it was taken, seconds since the epoch: the job's clock at the monitor's
    /// round that took it (nvidia-smi's own timestamp is the node's local time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_s: Option<f64>,
    /// The GPU's index.
    pub index: u32,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `utilization.gpu`, percent.
    pub utilization_percent: Option<f64>,
    /// `utilization.memory`, percent.
    pub memory_utilization_percent: Option<f64>,
    /// `memory.used`, MiB.
    pub memory_used_mib: Option<f64>,
    /// `memory.total`, MiB.
    pub memory_total_mib: Option<f64>,
    /// `power.draw`, W.
    pub power_w: Option<f64>,
    /// `temperature.gpu`, °C.
    pub temperature_c: Option<f64>,
    /// `clocks.sm` (`clocks.current.sm` in the header), MHz.
    pub sm_clock_mhz: Option<f64>,
}

/// Mean and maximum of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct MeanMax {
    /// The mean.
    pub mean: f64,
    /// The maximum.
    pub max: f64,
}

fn mean_max(values: impl Iterator<Item = f64>) -> Option<MeanMax> {
    let (mut n, mut sum, mut max) = (0u32, 0.0, f64::MIN);
    for v in values {
        n += 1;
        sum += v;
        max = max.max(v);
    }
    (n > 0).then(|| MeanMax {
        mean: sum / f64::from(n),
        max,
    })
}

/// The figures a report shows of a series.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MonitorSummary {
    /// Samples of the job's processes.
    pub samples: usize,
    /// The job's CPU, percent of one core.
    pub cpu_percent: Option<MeanMax>,
    /// The job's resident memory, MB.
    pub rss_mb: Option<MeanMax>,
    /// The node's CPU, percent of all its cores.
    pub node_cpu_percent: Option<MeanMax>,
    /// GPU utilisation, percent (all GPUs).
    pub gpu_utilization_percent: Option<MeanMax>,
    /// GPU memory used, MiB.
    pub gpu_memory_used_mib: Option<MeanMax>,
    /// GPU power, W.
    pub gpu_power_w: Option<MeanMax>,
}

/// A parsed `monitor.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MonitorSeries {
    /// The sampling interval, seconds.
    pub interval_s: Option<f64>,
    /// The job's processes.
    pub process: Vec<ProcessSample>,
    /// The node.
    pub node: Vec<NodeSample>,
    /// The GPUs.
    pub gpus: Vec<GpuSample>,
    /// The CPU packages' energy counters (none where RAPL is absent or unreadable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rapl: Vec<RaplSample>,
    /// Their summary.
    pub summary: MonitorSummary,
}

fn header_value(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Parses a `monitor.csv`. Lines it does not understand (a sample cut short when the
/// job was cancelled) are skipped.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn parse_monitor(text: &str) -> MonitorSeries {
    let header = text
        .lines()
        .find(|l| l.starts_with("# orchestrator-monitor"));
    let clk_tck = header
        .and_then(|h| header_value(h, "clk_tck"))
        .unwrap_or(100.0);
    let page = header
        .and_then(|h| header_value(h, "page_size"))
        .unwrap_or(4096.0);
    let interval_s = header.and_then(|h| header_value(h, "interval_s"));
    let mut raw_proc: Vec<(f64, f64, f64, u32)> = Vec::new();
    let mut raw_node: Vec<(f64, f64, f64, f64, f64)> = Vec::new();
    let mut gpu_text = String::new();
    let mut rapl = Vec::new();
    // The unix time of the round each GPU data row was taken in.
    let (mut round, mut gpu_rounds): (Option<f64>, Vec<Option<f64>>) = (None, Vec::new());
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        let num = |i: usize| fields.get(i).and_then(|f| f.trim().parse::<f64>().ok());
        match fields.first().copied() {
            Some("proc") => {
                if let (Some(t), Some(ticks), Some(pages), Some(n)) =
                    (num(1), num(2), num(3), num(4))
                {
                    raw_proc.push((t, ticks, pages, n as u32));
                    round = Some(t);
                }
            }
            Some("node") => {
                if let (Some(t), Some(busy), Some(idle), Some(total), Some(avail)) =
                    (num(1), num(2), num(3), num(4), num(5))
                {
                    raw_node.push((t, busy, idle, total, avail));
                    round = Some(t);
                }
            }
            Some("rapl") => {
                if let (Some(t), Some(zone), Some(name), Some(energy), Some(max)) =
                    (num(1), fields.get(2), fields.get(3), num(4), num(5))
                {
                    rapl.push(RaplSample {
                        unix_s: t,
                        zone: (*zone).to_owned(),
                        name: (*name).to_owned(),
                        energy_uj: energy,
                        max_energy_range_uj: max,
                    });
                }
            }
            Some("gpu") => {
                let row = &line[4..];
                // A data row (not nvidia-smi's header) is dated by its round's clock.
                if !row.trim_start().starts_with("timestamp") && !row.trim().is_empty() {
                    gpu_rounds.push(round);
                }
                gpu_text.push_str(row);
                gpu_text.push('\n');
            }
            _ => {}
        }
    }
    let t0 = raw_proc
        .first()
        .map(|p| p.0)
        .or_else(|| raw_node.first().map(|n| n.0))
        .unwrap_or(0.0);
    let process: Vec<ProcessSample> = raw_proc
        .windows(2)
        .map(|w| {
            let (prev, cur) = (w[0], w[1]);
            let dt = (cur.0 - prev.0).max(1e-6);
            ProcessSample {
                t_s: cur.0 - t0,
                cpu_percent: ((cur.1 - prev.1) / clk_tck / dt * 100.0).max(0.0),
                rss_mb: cur.2 * page / 1e6,
                processes: cur.3,
            }
        })
        .collect();
    let node: Vec<NodeSample> = raw_node
        .windows(2)
        .map(|w| {
            let (prev, cur) = (w[0], w[1]);
            let busy = cur.1 - prev.1;
            let all = busy + (cur.2 - prev.2);
            NodeSample {
                t_s: cur.0 - t0,
                cpu_percent: if all > 0.0 { busy / all * 100.0 } else { 0.0 },
                memory_used_mb: (cur.3 - cur.4) * 1024.0 / 1e6,
                memory_total_mb: cur.3 * 1024.0 / 1e6,
            }
        })
        .collect();
    let mut gpus = parse_nvidia_smi_csv(&gpu_text, None);
    if gpus.len() == gpu_rounds.len() {
        for (gpu, at) in gpus.iter_mut().zip(gpu_rounds) {
            gpu.unix_s = at;
        }
    }
    let summary = MonitorSummary {
        samples: process.len(),
        cpu_percent: mean_max(process.iter().map(|p| p.cpu_percent)),
        rss_mb: mean_max(process.iter().map(|p| p.rss_mb)),
        node_cpu_percent: mean_max(node.iter().map(|n| n.cpu_percent)),
        gpu_utilization_percent: mean_max(gpus.iter().filter_map(|g| g.utilization_percent)),
        gpu_memory_used_mib: mean_max(gpus.iter().filter_map(|g| g.memory_used_mib)),
        gpu_power_w: mean_max(gpus.iter().filter_map(|g| g.power_w)),
    };
    MonitorSeries {
        interval_s,
        process,
        node,
        gpus,
        rapl,
        summary,
    }
}

/// `38`, `0 %`, `143771 MiB`, `125.95 W`, `465 MHz` → the number; `[N/A]`,
/// `[Not Supported]` or anything else → `None`.
fn gpu_number(field: &str) -> Option<f64> {
    field.split_whitespace().next()?.parse().ok()
}

/// `2026/11/28 14:21:44.368` → seconds since the epoch (UTC as printed; only
/// differences are used).
pub(crate) fn nvidia_time(text: &str) -> Option<f64> {
    let (date, time) = text.trim().split_once(' ')?;
    let mut d = date.split('/').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min, s): (f64, f64, f64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    #[allow(clippy::cast_precision_loss)]
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// Parses `nvidia-smi --query-gpu=… --format=csv` output: columns are found by the
/// header's field names (`utilization.gpu [%]`, and `clocks.current.sm` for
/// `clocks.sm`), so any selection and order of fields works, and a header may repeat
/// (one per invocation). Without a header (`--format=csv,noheader`), `fields` names the
/// columns as the query did. A row whose value reads `[N/A]` is kept, that value
/// `None`.
#[must_use]
pub fn parse_nvidia_smi_csv(text: &str, fields: Option<&[&str]>) -> Vec<GpuSample> {
    let mut columns: Vec<String> = fields
        .map(|f| f.iter().map(|s| (*s).to_owned()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut t0: Option<f64> = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.first() == Some(&"timestamp") || cells.contains(&"index") {
            columns = cells
                .iter()
                .map(|c| {
                    c.split(" [")
                        .next()
                        .unwrap_or(c)
                        .replace("clocks.current.", "clocks.")
                })
                .collect();
            continue;
        }
        if columns.is_empty() {
            continue;
        }
        let cell = |name: &str| {
            columns
                .iter()
                .position(|c| c == name)
                .and_then(|i| cells.get(i).copied())
        };
        let Some(index) = cell("index").and_then(|i| i.parse().ok()) else {
            continue;
        };
        let timestamp = cell("timestamp").unwrap_or_default().to_owned();
        let t = nvidia_time(&timestamp);
        if t0.is_none() {
            t0 = t;
        }
        out.push(GpuSample {
            t_s: match (t, t0) {
                (Some(t), Some(t0)) => t - t0,
                _ => 0.0,
            },
            timestamp,
            unix_s: None,
            index,
            name: cell("name").map(str::to_owned),
            utilization_percent: cell("utilization.gpu").and_then(gpu_number),
            memory_utilization_percent: cell("utilization.memory").and_then(gpu_number),
            memory_used_mib: cell("memory.used").and_then(gpu_number),
            memory_total_mib: cell("memory.total").and_then(gpu_number),
            power_w: cell("power.draw").and_then(gpu_number),
            temperature_c: cell("temperature.gpu").and_then(gpu_number),
            sm_clock_mhz: cell("clocks.sm").and_then(gpu_number),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIES: &str = include_str!("../tests/fixtures/nvidia-smi/series-under-load.csv");
    const QUERY: &str = include_str!("../tests/fixtures/nvidia-smi/query-gpu.csv");
    const NOHEADER: &str =
        include_str!("../tests/fixtures/nvidia-smi/query-gpu-noheader-nounits.csv");

    #[test]
    fn the_real_h200_series_under_load_parses() {
        let s = parse_nvidia_smi_csv(SERIES, None);
        assert_eq!(s.len(), 23, "one row per second of the capture");
        assert_eq!(s[0].timestamp, "2026/11/28 14:21:44.368");
        assert_eq!(s[0].utilization_percent, Some(0.0));
        assert_eq!(s[0].memory_total_mib, Some(143_771.0));
        assert_eq!(s[0].power_w, Some(123.20));
        assert_eq!(
            s[0].sm_clock_mhz,
            Some(465.0),
            "clocks.current.sm is clocks.sm"
        );
        assert_eq!(s[0].name, None, "not asked for");
        let peak = s.iter().filter_map(|g| g.power_w).fold(f64::MIN, f64::max);
        assert!((peak - 694.80).abs() < 1e-9, "{peak}");
        assert!(s.iter().any(|g| g.utilization_percent == Some(100.0)));
        assert!(s.iter().any(|g| g.memory_used_mib == Some(1011.0)));
        // A row a second apart.
        assert!((s[1].t_s - 1.006).abs() < 1e-6, "{}", s[1].t_s);
        assert!((s[22].t_s - s[21].t_s - 1.0).abs() < 0.01);
    }

    #[test]
    fn the_full_query_with_units_and_without_header_agree() {
        let with = parse_nvidia_smi_csv(QUERY, None);
        assert_eq!(with.len(), 1);
        let g = &with[0];
        assert_eq!(g.name.as_deref(), Some("NVIDIA H200"));
        assert_eq!(g.index, 0);
        assert_eq!(
            (g.memory_used_mib, g.memory_total_mib),
            (Some(0.0), Some(143_771.0))
        );
        assert_eq!((g.power_w, g.temperature_c), (Some(125.95), Some(38.0)));
        let fields = [
            "timestamp",
            "index",
            "name",
            "uuid",
            "pci.bus_id",
            "driver_version",
            "utilization.gpu",
            "utilization.memory",
            "memory.total",
            "memory.used",
            "memory.free",
            "power.draw",
            "power.limit",
            "temperature.gpu",
            "clocks.sm",
            "clocks.mem",
        ];
        let without = parse_nvidia_smi_csv(NOHEADER, Some(&fields));
        assert_eq!(without.len(), 1);
        assert_eq!(without[0].memory_total_mib, Some(143_771.0));
        assert_eq!(without[0].power_w, Some(124.13));
        assert_eq!(without[0].sm_clock_mhz, Some(465.0));
    }

    #[test]
    fn missing_values_keep_their_row() {
        let text = "timestamp, index, utilization.gpu [%], power.draw [W]\n\
                    2026/11/28 14:21:44.368, 0, 12 %, [N/A]\n\
                    2026/11/28 14:21:44.368, 1, [Not Supported], 80.5 W\n";
        let s = parse_nvidia_smi_csv(text, None);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].utilization_percent, s[0].power_w), (Some(12.0), None));
        assert_eq!((s[1].utilization_percent, s[1].power_w), (None, Some(80.5)));
    }

    #[test]
    fn a_monitor_file_becomes_rates_and_sizes() {
        // Two samples a second apart: 50 ticks at 100 per second is half a core; 2560
        // pages of 4096 bytes; the node busy 30 of 100 ticks.
        let text = format!(
            "# orchestrator-monitor 1 clk_tck=100 page_size=4096 interval_s=1\n\
             proc,1000.0,100,1000,2\n\
             node,1000.0,1000,9000,16000000,12000000\n\
             proc,1001.0,150,2560,3\n\
             node,1001.0,1030,9070,16000000,11000000\n\
             proc,1002.0,15\n\
             rapl,1000.5,intel-rapl:0,package-0,262143000000,262143328850\n\
             rapl,1001.5,intel-rapl:0,package-0,12\n\
             rapl,1001.5,intel-rapl:0,package-0,50000000,262143328850\n\
             {}",
            SERIES
                .lines()
                .map(|l| format!("gpu,{l}\n"))
                .collect::<String>()
        );
        let m = parse_monitor(&text);
        assert_eq!(m.interval_s, Some(1.0));
        assert_eq!(m.process.len(), 1, "a cut-short line is skipped");
        let p = &m.process[0];
        assert!((p.cpu_percent - 50.0).abs() < 1e-9);
        assert!((p.rss_mb - 2560.0 * 4096.0 / 1e6).abs() < 1e-9);
        assert_eq!(p.processes, 3);
        let n = &m.node[0];
        assert!((n.cpu_percent - 30.0).abs() < 1e-9);
        assert!((n.memory_used_mb - 5_000_000.0 * 1024.0 / 1e6).abs() < 1e-6);
        assert_eq!(m.gpus.len(), 23);
        // RAPL readings as read; one cut short is skipped.
        assert_eq!(m.rapl.len(), 2);
        assert_eq!(
            (m.rapl[1].zone.as_str(), m.rapl[1].name.as_str()),
            ("intel-rapl:0", "package-0")
        );
        assert_eq!(
            (
                m.rapl[1].unix_s,
                m.rapl[1].energy_uj,
                m.rapl[1].max_energy_range_uj
            ),
            (1001.5, 50_000_000.0, 262_143_328_850.0)
        );
        let power = m.summary.gpu_power_w.unwrap();
        assert!((power.max - 694.80).abs() < 1e-9);
        assert_eq!(m.summary.gpu_utilization_percent.unwrap().max, 100.0);
    }
}
