//! Choosing among a field's candidates: the `pick` hint, enum votes and
//! cash rounding.

use serde_json::Value;

use super::hints::Pick;
use super::text::L;
use super::{Cand, Plan};
use crate::extract::field::FieldType;
use crate::extract::parse::find_amounts;
use crate::extract::record::FieldValue;

impl Cand {
    pub(super) fn field_value(&self) -> FieldValue {
        FieldValue {
            value: self.value.clone(),
            confidence: self.score.clamp(0.0, 1.0),
            page: Some(self.page),
            bbox: Some(self.bbox),
        }
    }
}

/// The `rounding` hint: a picked amount that is not a multiple of the step
/// gives way to one that is, within one step of it: first among the other
/// candidates (best confidence), else the first such amount with decimals
/// at or after it in reading order on its page (an unlabelled rounded total
/// printed below), with 0.9 times its confidence.
pub(super) fn apply_rounding(plan: &Plan, lines: &[L], cands: &[Cand], best: Cand) -> Cand {
    let (Some(step), Some(v)) = (plan.def.hints.rounding, best.num) else {
        return best;
    };
    let is_multiple = |x: f64| ((x / step) - (x / step).round()).abs() < 1e-6;
    if is_multiple(v) {
        return best;
    }
    let near = |x: f64| x > 0.0 && is_multiple(x) && (x - v).abs() < step;
    if let Some(c) = cands
        .iter()
        .filter(|c| c.num.is_some_and(near))
        .max_by(|a, b| a.score.total_cmp(&b.score))
    {
        return c.clone();
    }
    for l in lines
        .iter()
        .filter(|l| l.page == best.page && l.order >= best.order)
    {
        for a in find_amounts(&l.text) {
            if a.value.has_decimals && near(a.value.value) {
                let Some(n) = serde_json::Number::from_f64(a.value.value) else {
                    continue;
                };
                return Cand {
                    value: Value::Number(n),
                    score: best.score * 0.9,
                    page: l.page,
                    bbox: l.span_box(a.start, a.end),
                    order: l.order,
                    num: Some(a.value.value),
                    sure: true,
                    alt: None,
                    copy: 1.0,
                };
            }
        }
    }
    best
}

pub(super) fn pick(plan: &Plan, mut cands: Vec<Cand>) -> Option<Cand> {
    if cands.is_empty() {
        return None;
    }
    if let FieldType::Enum(_) = plan.ty {
        // Vote: the value with the largest summed score; its best candidate.
        let mut votes: Vec<(Value, f32)> = Vec::new();
        for c in &cands {
            match votes.iter_mut().find(|(v, _)| *v == c.value) {
                Some((_, sum)) => *sum += c.score,
                None => votes.push((c.value.clone(), c.score)),
            }
        }
        let winner = votes
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(v, _)| v)?;
        cands.retain(|c| c.value == winner);
    }
    let by_score = |a: &Cand, b: &Cand| a.score.total_cmp(&b.score).then(b.order.cmp(&a.order));
    match plan.def.hints.pick {
        Pick::Best => cands.into_iter().max_by(by_score),
        Pick::Largest => {
            // Among labelled candidates of at least half the best confidence.
            let best = cands.iter().map(|c| c.score).fold(0.0f32, f32::max);
            cands
                .into_iter()
                .filter(|c| c.score >= 0.5 * best)
                .max_by(|a, b| {
                    a.sure
                        .cmp(&b.sure)
                        .then(
                            a.num
                                .unwrap_or(f64::NEG_INFINITY)
                                .total_cmp(&b.num.unwrap_or(f64::NEG_INFINITY)),
                        )
                        .then(by_score(a, b))
                })
        }
        Pick::First => cands.into_iter().min_by_key(|c| c.order),
        Pick::Last => cands.into_iter().max_by_key(|c| c.order),
        Pick::Top => cands
            .into_iter()
            .min_by(|a, b| a.page.cmp(&b.page).then(a.bbox.y0.total_cmp(&b.bbox.y0))),
        Pick::Bottom => cands
            .into_iter()
            .max_by(|a, b| a.page.cmp(&b.page).then(a.bbox.y1.total_cmp(&b.bbox.y1))),
    }
}

/// The winner's confidence, from its own score and how it stands among the
/// field's other candidates: a rival with another value takes away up to
/// half of it in proportion to the rival's score (`1 - 0.5 × rival/best`),
/// and each other candidate that found the same value adds back a tenth of
/// what is missing to 1, up to three. So a lone, clear candidate keeps its
/// score; one of two close readings drops towards half of it.
pub(super) fn confidence(mut best: Cand, all: &[Cand]) -> Cand {
    let s = best.score.max(f32::EPSILON);
    let rival = all
        .iter()
        .filter(|c| c.value != best.value)
        .map(|c| c.score)
        .fold(0.0f32, f32::max);
    let agree = all
        .iter()
        .filter(|c| c.value == best.value && !(c.page == best.page && c.bbox == best.bbox))
        .count()
        .min(3);
    let mut conf = s * (1.0 - 0.5 * (rival / s).min(1.0));
    for _ in 0..agree {
        conf += 0.1 * (1.0 - conf);
    }
    best.score = conf.clamp(0.0, 1.0);
    best
}
