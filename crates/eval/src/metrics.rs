//! Metrics that know nothing about logs: proportions with Wilson intervals, confusion
//! matrices and the precision/recall/F1 averages read from them, mean absolute error and
//! expected calibration error.
//!
//! Zero-division rule, everywhere: a ratio whose denominator is 0 counts as 0 (the
//! `zero_division=0` convention of scikit-learn), never NaN, so reports serialise and
//! averages stay finite.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// `successes / trials` with its Wilson score 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    pub successes: u64,
    pub trials: u64,
    /// `successes / trials`; 0 when `trials` is 0.
    pub value: f64,
    /// Lower end of the Wilson 95 % interval.
    pub low: f64,
    /// Upper end of the Wilson 95 % interval.
    pub high: f64,
}

impl Proportion {
    /// A proportion and its interval. `successes` above `trials` are clamped to `trials`
    /// (a caller bug must not produce a rate above 1).
    pub fn new(successes: u64, trials: u64) -> Proportion {
        let successes = successes.min(trials);
        let (low, high) = wilson_interval(successes, trials);
        Proportion {
            successes,
            trials,
            value: ratio(successes as f64, trials as f64),
            low,
            high,
        }
    }

    /// The share of `true` values.
    pub fn from_flags(flags: impl IntoIterator<Item = bool>) -> Proportion {
        let (mut hits, mut n) = (0, 0);
        for flag in flags {
            n += 1;
            hits += u64::from(flag);
        }
        Proportion::new(hits, n)
    }
}

/// The Wilson score 95 % interval of `successes / trials`.
///
/// Chosen over the normal approximation because it stays inside [0, 1] and is sensible
/// for the small per-class counts of a 50-example test set. With no trials nothing is
/// known, so the interval is the whole of [0, 1].
pub fn wilson_interval(successes: u64, trials: u64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// `num / den`, or 0 when `den` is 0.
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Counts of (label, prediction) pairs: rows are label classes, columns predicted ones.
///
/// A missing prediction (no answer, or an answer that maps to no class) is not a class:
/// it is counted in [`no_answer`](Self::no_answer), as a miss for its label's class, and
/// is a false positive for no class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfusionMatrix {
    /// Every class seen as a label or a prediction: those of the caller's preferred order
    /// first, in that order, then the rest sorted.
    pub classes: Vec<String>,
    /// `counts[label][predicted]`, indexed like `classes`.
    pub counts: Vec<Vec<u64>>,
    /// Per label class, the examples with no usable prediction.
    pub no_answer: Vec<u64>,
}

impl ConfusionMatrix {
    /// Builds the matrix from `(label, prediction)` pairs. `order` fixes the position of
    /// the classes it names (a taxonomy's category order, severities from worst down);
    /// classes it does not name follow, sorted, and named classes that never occur are
    /// left out.
    pub fn from_pairs<L, P>(pairs: impl IntoIterator<Item = (L, Option<P>)>, order: &[&str]) -> Self
    where
        L: AsRef<str>,
        P: AsRef<str>,
    {
        let pairs: Vec<(L, Option<P>)> = pairs.into_iter().collect();
        let seen: BTreeSet<&str> = pairs
            .iter()
            .flat_map(|(l, p)| std::iter::once(l.as_ref()).chain(p.as_ref().map(|p| p.as_ref())))
            .collect();
        let mut classes: Vec<String> = order
            .iter()
            .filter(|c| seen.contains(*c))
            .map(|c| (*c).to_string())
            .collect();
        let ordered: BTreeSet<&str> = order.iter().copied().collect();
        classes.extend(
            seen.iter()
                .filter(|c| !ordered.contains(*c))
                .map(|c| (*c).to_string()),
        );
        let position: HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();

        let k = classes.len();
        let mut counts = vec![vec![0u64; k]; k];
        let mut no_answer = vec![0u64; k];
        for (label, predicted) in &pairs {
            // Every class was collected above, so the lookups cannot miss.
            let Some(&row) = position.get(label.as_ref()) else {
                continue;
            };
            match predicted.as_ref().and_then(|p| position.get(p.as_ref())) {
                Some(&col) => counts[row][col] += 1,
                None => no_answer[row] += 1,
            }
        }
        ConfusionMatrix {
            classes,
            counts,
            no_answer,
        }
    }

    /// Number of labelled examples (every row, no-answers included).
    pub fn total(&self) -> u64 {
        (0..self.classes.len()).map(|i| self.support(i)).sum()
    }

    /// Examples whose prediction equals the label.
    pub fn correct(&self) -> u64 {
        (0..self.classes.len()).map(|i| self.counts[i][i]).sum()
    }

    /// Overall accuracy: correct / labelled, no-answers counting as wrong.
    pub fn accuracy(&self) -> Proportion {
        Proportion::new(self.correct(), self.total())
    }

    /// Label count of class `i`.
    fn support(&self, i: usize) -> u64 {
        self.counts[i].iter().sum::<u64>() + self.no_answer[i]
    }

    /// Times class `i` was predicted.
    fn predicted(&self, i: usize) -> u64 {
        self.counts.iter().map(|row| row[i]).sum()
    }

    /// Precision, recall, F1 and accuracy of every class, in `classes` order.
    ///
    /// A class never predicted has precision 0; a class never in the labels has recall 0
    /// and its per-class accuracy is 0/0 (value 0, interval [0, 1]).
    pub fn per_class(&self) -> Vec<ClassScore> {
        (0..self.classes.len())
            .map(|i| {
                let tp = self.counts[i][i];
                let support = self.support(i);
                let predicted = self.predicted(i);
                let precision = ratio(tp as f64, predicted as f64);
                let recall = ratio(tp as f64, support as f64);
                ClassScore {
                    class: self.classes[i].clone(),
                    support,
                    predicted,
                    true_positives: tp,
                    precision,
                    recall,
                    f1: ratio(2.0 * precision * recall, precision + recall),
                    accuracy: Proportion::new(tp, support),
                }
            })
            .collect()
    }

    /// Macro and weighted precision/recall/F1.
    ///
    /// Macro averages every class of the matrix: a class seen only in predictions counts,
    /// with recall 0 and F1 0 (as scikit-learn does with `labels=None`), so inventing
    /// classes is punished. Weighted averages by label support, so such classes weigh 0.
    pub fn averages(&self) -> Averages {
        let scores = self.per_class();
        let k = scores.len() as f64;
        let total: u64 = scores.iter().map(|s| s.support).sum();
        let mean = |f: fn(&ClassScore) -> f64| ratio(scores.iter().map(f).sum(), k);
        let weighted = |f: fn(&ClassScore) -> f64| {
            ratio(
                scores.iter().map(|s| f(s) * s.support as f64).sum(),
                total as f64,
            )
        };
        Averages {
            macro_precision: mean(|s| s.precision),
            macro_recall: mean(|s| s.recall),
            macro_f1: mean(|s| s.f1),
            weighted_precision: weighted(|s| s.precision),
            weighted_recall: weighted(|s| s.recall),
            weighted_f1: weighted(|s| s.f1),
        }
    }

    /// SOC-Bench's macro accuracy: the mean per-class accuracy over the classes that
    /// occur as labels (classes seen only in predictions have no accuracy of their own).
    pub fn macro_accuracy(&self) -> f64 {
        let labelled: Vec<f64> = self
            .per_class()
            .iter()
            .filter(|s| s.support > 0)
            .map(|s| s.accuracy.value)
            .collect();
        ratio(labelled.iter().sum(), labelled.len() as f64)
    }
}

/// One class's scores; see [`ConfusionMatrix::per_class`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub class: String,
    /// Examples labelled with this class.
    pub support: u64,
    /// Examples predicted as this class.
    pub predicted: u64,
    pub true_positives: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Accuracy on this class's examples (equal to recall) with its Wilson interval.
    pub accuracy: Proportion,
}

/// Averages of [`ClassScore`]s; see [`ConfusionMatrix::averages`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Averages {
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub weighted_precision: f64,
    pub weighted_recall: f64,
    pub weighted_f1: f64,
}

/// Mean absolute error with the number of pairs it was computed on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanError {
    /// `None` when there were no pairs.
    pub value: Option<f64>,
    pub pairs: u64,
}

/// Mean absolute error of `(label, prediction)` pairs; non-finite pairs are skipped.
pub fn mean_absolute_error(pairs: impl IntoIterator<Item = (f64, f64)>) -> MeanError {
    let (mut sum, mut n) = (0.0, 0u64);
    for (label, predicted) in pairs {
        let error = (label - predicted).abs();
        if error.is_finite() {
            sum += error;
            n += 1;
        }
    }
    MeanError {
        value: (n > 0).then(|| sum / n as f64),
        pairs: n,
    }
}

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// The bin covers confidences in `[lower, upper)` (the last bin includes 1.0).
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Mean confidence of the bin's pairs (`NaN` when empty).
    pub mean_confidence: f64,
    /// Share of the bin's pairs that were correct (`NaN` when empty).
    pub accuracy: f64,
}

/// The reliability diagram of `(confidence, correct)` pairs over `bins` equal-width
/// confidence bins. Confidences are clamped to [0, 1]; non-finite ones are skipped.
pub fn reliability(pairs: &[(f64, bool)], bins: usize) -> Vec<ReliabilityBin> {
    if bins == 0 {
        return Vec::new();
    }
    // Per bin: (count, sum of confidence, correct count).
    let mut acc = vec![(0usize, 0.0f64, 0usize); bins];
    for &(confidence, correct) in pairs {
        if !confidence.is_finite() {
            continue;
        }
        let c = confidence.clamp(0.0, 1.0);
        let bin = ((c * bins as f64) as usize).min(bins - 1);
        acc[bin].0 += 1;
        acc[bin].1 += c;
        acc[bin].2 += usize::from(correct);
    }
    acc.into_iter()
        .enumerate()
        .map(|(i, (count, conf, hits))| {
            let k = count as f64;
            ReliabilityBin {
                lower: i as f64 / bins as f64,
                upper: (i + 1) as f64 / bins as f64,
                count,
                mean_confidence: conf / k,
                accuracy: hits as f64 / k,
            }
        })
        .collect()
}

/// Expected calibration error of `(confidence, correct)` pairs over `bins` equal-width
/// confidence bins: the support-weighted mean of |accuracy - mean confidence| per bin.
///
/// Confidences are clamped to [0, 1] (1.0 falls in the last bin); non-finite ones are
/// skipped. `None` when there are no usable pairs or no bins.
pub fn expected_calibration_error(pairs: &[(f64, bool)], bins: usize) -> Option<f64> {
    ece_of(&reliability(pairs, bins))
}

/// Expected calibration error of an already binned diagram.
pub fn ece_of(bins: &[ReliabilityBin]) -> Option<f64> {
    let n: usize = bins.iter().map(|b| b.count).sum();
    (n > 0).then(|| {
        bins.iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.count as f64 / n as f64) * (b.accuracy - b.mean_confidence).abs())
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn wilson_known_values() {
        let (lo, hi) = wilson_interval(8, 10);
        assert!(close(lo, 0.4902) && close(hi, 0.9433), "{lo} {hi}");
        let (lo, hi) = wilson_interval(0, 10);
        assert!(close(lo, 0.0) && close(hi, 0.2775), "{lo} {hi}");
        let (lo, hi) = wilson_interval(10, 10);
        assert!(close(lo, 0.7225) && close(hi, 1.0), "{lo} {hi}");
        // 34/50 (the paper's 68 %).
        let (lo, hi) = wilson_interval(34, 50);
        assert!(close(lo, 0.5419) && close(hi, 0.7924), "{lo} {hi}");
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
    }

    #[test]
    fn proportion_handles_zero_trials_and_overcounts() {
        let p = Proportion::new(0, 0);
        assert_eq!((p.value, p.low, p.high), (0.0, 0.0, 1.0));
        let p = Proportion::new(7, 5);
        assert_eq!((p.successes, p.value), (5, 1.0));
        let p = Proportion::from_flags([true, false, true, true]);
        assert_eq!((p.successes, p.trials, p.value), (3, 4, 0.75));
    }

    /// Labels a,a,a,b,b,c; predictions a,a,b,b,(none),a.
    fn small() -> ConfusionMatrix {
        let pairs = [
            ("a", Some("a")),
            ("a", Some("a")),
            ("a", Some("b")),
            ("b", Some("b")),
            ("b", None),
            ("c", Some("a")),
        ];
        ConfusionMatrix::from_pairs(pairs, &["c"])
    }

    #[test]
    fn confusion_counts_and_order() {
        let m = small();
        assert_eq!(m.classes, ["c", "a", "b"]);
        assert_eq!(m.counts, vec![vec![0, 1, 0], vec![0, 2, 1], vec![0, 0, 1]]);
        assert_eq!(m.no_answer, [0, 0, 1]);
        assert_eq!((m.correct(), m.total()), (3, 6));
        assert_eq!(m.accuracy().value, 0.5);
    }

    #[test]
    fn per_class_precision_recall_f1() {
        let s = small().per_class();
        // a: tp 2, predicted 3 (two a's and the c), support 3.
        assert!(close(s[1].precision, 2.0 / 3.0) && close(s[1].recall, 2.0 / 3.0));
        assert!(close(s[1].f1, 2.0 / 3.0));
        // b: tp 1, predicted 2, support 2 (one no-answer).
        assert!(close(s[2].precision, 0.5) && close(s[2].recall, 0.5));
        // c: never predicted: precision 0/0 -> 0, recall 0, F1 0.
        assert_eq!((s[0].precision, s[0].recall, s[0].f1), (0.0, 0.0, 0.0));
        assert_eq!((s[0].support, s[0].predicted), (1, 0));
    }

    #[test]
    fn macro_and_weighted_averages() {
        let avg = small().averages();
        let macro_p = (0.0 + 2.0 / 3.0 + 0.5) / 3.0;
        assert!(close(avg.macro_precision, macro_p));
        assert!(close(avg.macro_recall, macro_p));
        assert!(close(avg.macro_f1, macro_p));
        // Weights: c 1, a 3, b 2 of 6.
        let weighted = (0.0 + 3.0 * 2.0 / 3.0 + 2.0 * 0.5) / 6.0;
        assert!(close(avg.weighted_precision, weighted));
        assert!(close(avg.weighted_f1, weighted));
        assert!(close(small().macro_accuracy(), macro_p));
    }

    #[test]
    fn class_only_in_predictions_counts_in_macro_not_weighted() {
        // Labels a,a; predictions a,z. z: precision 0, recall 0/0 -> 0, support 0.
        let m = ConfusionMatrix::from_pairs([("a", Some("a")), ("a", Some("z"))], &[]);
        assert_eq!(m.classes, ["a", "z"]);
        let avg = m.averages();
        // a: precision 1, recall 0.5, F1 2/3; z: all 0.
        assert!(close(avg.macro_precision, 0.5));
        assert!(close(avg.macro_recall, 0.25));
        assert!(close(avg.macro_f1, 1.0 / 3.0));
        assert!(close(avg.weighted_precision, 1.0));
        assert!(close(avg.weighted_recall, 0.5));
        // Macro accuracy ignores z, which has no labels.
        assert!(close(m.macro_accuracy(), 0.5));
        let z = &m.per_class()[1];
        assert_eq!(
            (z.accuracy.trials, z.accuracy.low, z.accuracy.high),
            (0, 0.0, 1.0)
        );
    }

    #[test]
    fn empty_matrix_is_all_zero() {
        let m = ConfusionMatrix::from_pairs(Vec::<(&str, Option<&str>)>::new(), &["a"]);
        assert!(m.classes.is_empty());
        assert_eq!(m.accuracy().value, 0.0);
        assert_eq!(m.averages().macro_f1, 0.0);
        assert_eq!(m.macro_accuracy(), 0.0);
    }

    #[test]
    fn mae() {
        let e = mean_absolute_error([(80.0, 70.0), (50.0, 55.0), (10.0, f64::NAN)]);
        assert_eq!(e.value, Some(7.5));
        assert_eq!(e.pairs, 2);
        assert_eq!(mean_absolute_error([]).value, None);
    }

    #[test]
    fn ece_hand_computed() {
        // 2 bins. Bin 0: conf 0.2, 0.4 -> mean 0.3, 1 of 2 correct -> |0.5-0.3| = 0.2.
        // Bin 1: conf 0.9, 1.0 -> mean 0.95, 2 of 2 correct -> 0.05. ECE = 0.5*0.2 + 0.5*0.05.
        let pairs = [(0.2, true), (0.4, false), (0.9, true), (1.0, true)];
        let ece = expected_calibration_error(&pairs, 2).unwrap_or(f64::NAN);
        assert!(close(ece, 0.125), "{ece}");
        assert_eq!(expected_calibration_error(&[(1.0, true)], 10), Some(0.0));
        assert_eq!(expected_calibration_error(&[], 10), None);
        assert_eq!(expected_calibration_error(&pairs, 0), None);
        assert_eq!(expected_calibration_error(&[(f64::NAN, true)], 5), None);
        let diagram = reliability(&pairs, 2);
        assert_eq!(diagram.iter().map(|b| b.count).collect::<Vec<_>>(), [2, 2]);
        assert!(close(diagram[0].mean_confidence, 0.3) && close(diagram[0].accuracy, 0.5));
        assert!(close(diagram[1].upper, 1.0) && close(diagram[1].accuracy, 1.0));
    }
}
