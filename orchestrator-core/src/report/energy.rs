//! Energy of a run: the GPU power a service's monitoring sampled (`power.draw`),
//! integrated over the run's measured period, and the CPU packages' RAPL energy
//! counters read across it, per request and per output token.

use serde::Serialize;

use crate::monitor::{GpuSample, RaplSample};

/// What a run cost in energy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Energy {
    /// Joules drawn by the service's GPUs over the measured period.
    pub gpu_joules: f64,
    /// Per completed request.
    pub joules_per_request: Option<f64>,
    /// Per output token.
    pub joules_per_output_token: Option<f64>,
    /// Mean power, W.
    pub mean_power_w: f64,
    /// GPUs whose samples covered the period.
    pub gpus: usize,
    /// Samples within the period (and the one either side).
    pub samples: usize,
    /// Seconds at the period's ends past the first or last sample, where that
    /// sample's power is held (no more than the series' widest gap between samples:
    /// a service stopped as soon as its client ended has no sample after it).
    #[serde(default)]
    pub held_s: f64,
}

/// The widest gap between successive times of a series (`(unix s, value)`, sorted).
fn widest_gap(series: &[(f64, f64)]) -> f64 {
    series
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .fold(0.0, f64::max)
}

/// The integral of a piecewise-linear power series (`(unix s, W)`, sorted) over
/// `[from, to]`, joules, its samples and the seconds held at the ends; `None` when
/// the samples stop further from an end than their widest gap.
fn integral(series: &[(f64, f64)], from: f64, to: f64) -> Option<(f64, usize, f64)> {
    let first = series.first()?;
    let last = series.last()?;
    let gap = widest_gap(series);
    let held = (first.0 - from).max(0.0) + (to - last.0).max(0.0);
    if first.0 - from > gap || to - last.0 > gap || to <= from {
        return None;
    }
    let at = |t: f64| -> f64 {
        if series.len() == 1 || t <= first.0 {
            return first.1;
        }
        if t >= last.0 {
            return last.1;
        }
        let i = series
            .partition_point(|p| p.0 <= t)
            .clamp(1, series.len() - 1);
        let ((t0, p0), (t1, p1)) = (series[i - 1], series[i]);
        if t1 <= t0 {
            p1
        } else {
            p0 + (p1 - p0) * (t - t0) / (t1 - t0)
        }
    };
    // The ends, and every sample between them.
    let mut points = vec![(from, at(from))];
    points.extend(series.iter().copied().filter(|p| p.0 > from && p.0 < to));
    points.push((to, at(to)));
    let joules = points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum();
    Some((joules, points.len() - 2, held))
}

/// The energy the `gpus` (every GPU's samples, dated by `unix_s`) drew over
/// `window` (unix seconds), and per request and token; `None` without dated power
/// samples covering the whole window.
#[must_use]
pub fn of(
    gpus: &[GpuSample],
    window: [f64; 2],
    requests: u64,
    output_tokens: Option<u64>,
) -> Option<Energy> {
    let mut indices: Vec<u32> = gpus.iter().map(|g| g.index).collect();
    indices.sort_unstable();
    indices.dedup();
    let (mut joules, mut samples, mut covered, mut held_s) = (0.0, 0, 0, 0.0f64);
    for index in indices {
        let mut series: Vec<(f64, f64)> = gpus
            .iter()
            .filter(|g| g.index == index)
            .filter_map(|g| Some((g.unix_s?, g.power_w?)))
            .collect();
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((j, n, held)) = integral(&series, window[0], window[1]) {
            joules += j;
            samples += n;
            covered += 1;
            held_s = held_s.max(held);
        }
    }
    if covered == 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let per = |n: u64| (n > 0).then(|| joules / n as f64);
    Some(Energy {
        gpu_joules: joules,
        joules_per_request: per(requests),
        joules_per_output_token: output_tokens.and_then(per),
        mean_power_w: joules / (window[1] - window[0]),
        gpus: covered,
        samples,
        held_s,
    })
}

/// What a run cost in CPU package energy (RAPL), on the node of the service it loaded:
/// the whole packages, whatever else ran on them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct CpuEnergy {
    /// Joules counted by the packages' RAPL counters over the measured period.
    pub joules: f64,
    /// Per completed request.
    pub joules_per_request: Option<f64>,
    /// Per output token.
    pub joules_per_output_token: Option<f64>,
    /// Mean power, W.
    pub mean_power_w: f64,
    /// Packages whose counters covered the period.
    pub packages: usize,
    /// Readings within the period.
    pub samples: usize,
}

/// A counter's readings as µJ counted since its first, each wrap (a reading below the
/// one before it) undone: `(unix s, µJ)`, sorted.
fn unwrapped(readings: &[&RaplSample]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(readings.len());
    let mut total = 0.0;
    for pair in readings.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let step = b.energy_uj - a.energy_uj;
        total += if step >= 0.0 {
            step
        } else {
            b.max_energy_range_uj - a.energy_uj + b.energy_uj
        };
        if out.is_empty() {
            out.push((a.unix_s, 0.0));
        }
        out.push((b.unix_s, total));
    }
    out
}

/// A cumulative series' value at `t`: between readings on the line through them,
/// beyond the ends at the rate of the nearest interval, and `None` further out than
/// the series' widest gap.
fn counted_at(series: &[(f64, f64)], t: f64) -> Option<f64> {
    let gap = widest_gap(series);
    let (first, last) = (series.first()?, series.last()?);
    if series.len() < 2 || t < first.0 - gap || t > last.0 + gap {
        return None;
    }
    let i = series
        .partition_point(|p| p.0 <= t)
        .clamp(1, series.len() - 1);
    let ((t0, e0), (t1, e1)) = (series[i - 1], series[i]);
    Some(if t1 > t0 {
        e0 + (e1 - e0) * (t - t0) / (t1 - t0)
    } else {
        e1
    })
}

/// The CPU package energy the `rapl` readings (every package's, dated) counted over
/// `window` (unix seconds), and per request and token; `None` without two readings
/// of a package around the whole window.
#[must_use]
pub fn cpu_of(
    rapl: &[RaplSample],
    window: [f64; 2],
    requests: u64,
    output_tokens: Option<u64>,
) -> Option<CpuEnergy> {
    if window[1] <= window[0] {
        return None;
    }
    let mut zones: Vec<&str> = rapl.iter().map(|r| r.zone.as_str()).collect();
    zones.sort_unstable();
    zones.dedup();
    let (mut joules, mut packages, mut samples) = (0.0, 0, 0);
    for zone in zones {
        let mut readings: Vec<&RaplSample> = rapl.iter().filter(|r| r.zone == zone).collect();
        readings.sort_by(|a, b| a.unix_s.total_cmp(&b.unix_s));
        let series = unwrapped(&readings);
        if let (Some(from), Some(to)) = (
            counted_at(&series, window[0]),
            counted_at(&series, window[1]),
        ) {
            joules += (to - from) / 1e6;
            packages += 1;
            samples += series
                .iter()
                .filter(|p| p.0 >= window[0] && p.0 <= window[1])
                .count();
        }
    }
    if packages == 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let per = |n: u64| (n > 0).then(|| joules / n as f64);
    Some(CpuEnergy {
        joules,
        joules_per_request: per(requests),
        joules_per_output_token: output_tokens.and_then(per),
        mean_power_w: joules / (window[1] - window[0]),
        packages,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series nvidia-smi printed on a real H200 while a matrix-product loop ran
    /// (`tests/fixtures/nvidia-smi/series-under-load.csv`), dated by its timestamps.
    fn h200() -> Vec<GpuSample> {
        let text = include_str!("../../tests/fixtures/nvidia-smi/series-under-load.csv");
        let mut gpus = crate::monitor::parse_nvidia_smi_csv(text, None);
        for g in &mut gpus {
            g.unix_s = crate::monitor::nvidia_time(&g.timestamp);
        }
        gpus
    }

    #[test]
    fn power_over_a_loaded_period_is_its_energy_per_request_and_token() {
        let gpus = h200();
        let t = |text: &str| crate::monitor::nvidia_time(text).unwrap();
        // 14:21:54.379 to 14:22:02.381, the GPU at 691.6 to 694.8 W throughout.
        let window = [t("2026/11/28 14:21:54.379"), t("2026/11/28 14:22:02.381")];
        let e = of(&gpus, window, 100, Some(10_000)).unwrap();
        let span = window[1] - window[0];
        assert!(
            e.gpu_joules > 691.6 * span && e.gpu_joules < 694.8 * span,
            "{e:?}"
        );
        assert!((e.joules_per_request.unwrap() - e.gpu_joules / 100.0).abs() < 1e-9);
        assert!((e.joules_per_output_token.unwrap() - e.gpu_joules / 10_000.0).abs() < 1e-9);
        assert_eq!((e.gpus, e.samples), (1, 7));
        // Idle, between samples at both ends: about 80 W.
        let idle = of(
            &gpus,
            [t("2026/11/28 14:21:45.874"), t("2026/11/28 14:21:50.878")],
            1,
            None,
        )
        .unwrap();
        assert!((idle.mean_power_w - 79.9).abs() < 0.1, "{idle:?}");
        assert!(idle.joules_per_output_token.is_none());
        // A window the samples do not cover has no energy, not a part of one.
        assert!(
            of(
                &gpus,
                [t("2026/11/28 14:22:05.000"), t("2026/11/28 14:22:09.000")],
                1,
                None
            )
            .is_none()
        );
        // A service stopped half a second after its last sample (its client's end):
        // that sample's 94.43 W is held over the rest, no further than one gap.
        let late = of(
            &gpus,
            [t("2026/11/28 14:22:05.382"), t("2026/11/28 14:22:06.882")],
            1,
            None,
        )
        .unwrap();
        let expected = (128.85 + 94.43) / 2.0 + 0.5 * 94.43;
        assert!((late.gpu_joules - expected).abs() < 0.01, "{late:?}");
        assert!((late.held_s - 0.5).abs() < 1e-3, "{late:?}");
        assert_eq!(e.held_s, 0.0);
        assert!(
            of(
                &gpus,
                [t("2026/11/28 14:22:05.382"), t("2026/11/28 14:22:07.500")],
                1,
                None
            )
            .is_none(),
            "past one gap"
        );
        // Undated samples (an older monitor file) give none either.
        let undated: Vec<GpuSample> = gpus
            .into_iter()
            .map(|g| GpuSample { unix_s: None, ..g })
            .collect();
        assert!(of(&undated, window, 1, None).is_none());
    }

    fn reading(t: f64, zone: &str, uj: f64) -> RaplSample {
        RaplSample {
            unix_s: t,
            zone: zone.into(),
            name: format!("package-{}", &zone[11..]),
            energy_uj: uj,
            // The range a real Xeon's package counter wraps at.
            max_energy_range_uj: 262_143_328_850.0,
        }
    }

    /// Two packages read every second: one at 50 W whose counter wraps between its
    /// second and third readings, one at 20 W. Over 1.5 s to 4.5 s they count 150 J
    /// and 60 J: 210 J, 70 W, per request and token.
    #[test]
    fn rapl_counters_across_a_period_are_its_cpu_energy_even_through_a_wrap() {
        let max = 262_143_328_850.0;
        let mut rapl = Vec::new();
        for i in 0..6u32 {
            let t = 1000.0 + f64::from(i);
            let wrapping = (max - 60e6 + f64::from(i) * 50e6) % max;
            rapl.push(reading(t, "intel-rapl:0", wrapping));
            rapl.push(reading(t, "intel-rapl:1", 7e6 + f64::from(i) * 20e6));
        }
        assert!(rapl[4].energy_uj < rapl[2].energy_uj, "the counter wraps");
        let e = cpu_of(&rapl, [1001.5, 1004.5], 30, Some(3000)).unwrap();
        assert!((e.joules - 210.0).abs() < 1e-6, "{e:?}");
        assert!((e.mean_power_w - 70.0).abs() < 1e-6, "{e:?}");
        assert!((e.joules_per_request.unwrap() - 7.0).abs() < 1e-9);
        assert!((e.joules_per_output_token.unwrap() - 0.07).abs() < 1e-9);
        assert_eq!((e.packages, e.samples), (2, 6));
        // Past the last reading by less than a gap: at the last interval's rate.
        let late = cpu_of(&rapl, [1004.0, 1005.5], 1, None).unwrap();
        assert!((late.joules - 1.5 * 70.0).abs() < 1e-6, "{late:?}");
        // Further than a gap, or with one reading, there is none.
        assert!(cpu_of(&rapl, [1004.0, 1006.5], 1, None).is_none());
        assert!(cpu_of(&rapl[..2], [1000.0, 1000.5], 1, None).is_none());
        assert!(cpu_of(&[], [1000.0, 1001.0], 1, None).is_none());
    }
}
