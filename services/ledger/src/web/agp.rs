//! The clinician's AGP report (Battelino et al. 2019, 2023 layout): glucose
//! statistics and targets, time in ranges, the modal-day profile and daily
//! profiles, computed by `glucochain-agp` from the ledger's verified CGM
//! records the viewer may read. Every figure carries its exact value in a
//! `data-value` attribute, and the readings behind it (each with its
//! transaction and block) are one click away as CSV.

use super::pages::cgm_mg_dl;
use super::{Api, PageError, Web, finish, page, patient_nav, patient_of, viewer};
use crate::api::{ApiState, Reader, audited, decide, patient_entries};
use actix_web::{HttpRequest, HttpResponse, web};
use glucochain_agp::{AgpReport, Band, Period, Reading, compute};
use glucochain_api::Problem;
use glucochain_crypto::Hash32;
use glucochain_types::ParticipantId;
use glucochain_types::time::Timestamp;
use glucochain_web::chart::{BAND_COLOURS, daily, modal_day, ranges_bar};
use glucochain_web::{Markup, clock, html};

const DAY_MS: i64 = 86_400_000;

/// A reading with the transaction that committed it.
struct Sourced {
    reading: Reading,
    tx: Hash32,
    height: u64,
    index: u32,
}

/// The report's query: `from` and `to` (local dates, inclusive), `offset` (minutes east of UTC).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    offset: Option<i32>,
}

fn local_midnight(date: &str, offset: i32, what: &str) -> Result<i64, Problem> {
    let t = Timestamp::parse(&format!("{date}T00:00:00Z"))
        .map_err(|_| Problem::bad_request(format!("{what} {date:?}: a date as YYYY-MM-DD")))?;
    Ok(t.unix_ms() - offset as i64 * 60_000)
}

fn period(q: &Query, last_reading_ms: Option<i64>) -> Result<Period, Problem> {
    let offset = q.offset.unwrap_or(0);
    if !(-720..=840).contains(&offset) {
        return Err(Problem::bad_request("offset: minutes east of UTC, -720 to 840"));
    }
    let to_ms = match &q.to {
        Some(d) if !d.is_empty() => local_midnight(d, offset, "to")? + DAY_MS,
        _ => {
            let last = last_reading_ms.unwrap_or_else(|| Timestamp::now().unix_ms());
            let local = last + offset as i64 * 60_000;
            local - local.rem_euclid(DAY_MS) + DAY_MS - offset as i64 * 60_000
        }
    };
    let from_ms = match &q.from {
        Some(d) if !d.is_empty() => local_midnight(d, offset, "from")?,
        _ => to_ms - 14 * DAY_MS,
    };
    if to_ms <= from_ms {
        return Err(Problem::bad_request("the report's end date must not be before its start date"));
    }
    if to_ms - from_ms > 90 * DAY_MS {
        return Err(Problem::bad_request("a report covers at most 90 days"));
    }
    Ok(Period { from_ms, to_ms, utc_offset_minutes: offset })
}

/// Authorizes (records scope, audited) and gathers the CGM readings.
async fn gather(
    req: &HttpRequest,
    api: &ApiState,
    v: &Reader,
    patient: &ParticipantId,
) -> Result<(Period, Vec<Sourced>), PageError> {
    let q = web::Query::<Query>::from_query(req.query_string())
        .map_err(|e| Problem::bad_request(format!("query: {e}")))?
        .into_inner();
    let decision = decide(api, req, v, patient).await?;
    audited(api, req, v, Some(patient), "search", decision.allows(), decision.reason()).await?;
    let all = patient_entries(api, patient, &decision, (None, None)).await?;
    let readings: Vec<Sourced> = all
        .iter()
        .filter_map(|e| {
            cgm_mg_dl(&e.resource, &e.codes).map(|g| Sourced {
                reading: Reading { at_ms: e.effective.unix_ms(), mg_dl: g },
                tx: e.tx_hash,
                height: e.height,
                index: e.index,
            })
        })
        .collect();
    let last = readings.iter().map(|s| s.reading.at_ms).max();
    let p = period(&q, last)?;
    let in_period =
        readings.into_iter().filter(|s| s.reading.at_ms >= p.from_ms && s.reading.at_ms < p.to_ms).collect();
    Ok((p, in_period))
}

fn date_of(ms: i64, offset: i32) -> String {
    glucochain_agp::civil_date((ms + offset as i64 * 60_000).div_euclid(DAY_MS))
}

fn figure(name: &str, value: f64, shown: String, unit: &str, goal: &str) -> Markup {
    html! {
        div.card data-figure=(name) data-value=(format!("{value:.6}")) {
            div.label { (name_label(name)) }
            div.value { (shown) span.unit { " " (unit) } }
            @if !goal.is_empty() { div.goal { (goal) } }
        }
    }
}

fn name_label(name: &str) -> &'static str {
    match name {
        "mean" => "Mean glucose",
        "gmi" => "Glucose management indicator (GMI)",
        "cv" => "Glucose variability (CV)",
        "active" => "CGM active time",
        _ => "",
    }
}

/// The AGP report page.
pub async fn report(req: HttpRequest, api: Api, web: Web, id: web::Path<String>) -> HttpResponse {
    finish(
        async {
            let v = viewer(&req, &api, &web).await?;
            let patient = patient_of(&id)?;
            let (p, sourced) = gather(&req, &api, &v, &patient).await?;
            let readings: Vec<Reading> = sourced.iter().map(|s| s.reading).collect();
            let nav = patient_nav(&v, &patient, "agp");
            let from_date = date_of(p.from_ms, p.utc_offset_minutes);
            let to_date = date_of(p.to_ms - 1, p.utc_offset_minutes);
            let form = html! {
                form.noprint.period method="get" action="" {
                    div { label for="from" { "From" } input #from type="date" name="from" value=(from_date); }
                    div { label for="to" { "To (inclusive)" } input #to type="date" name="to" value=(to_date); }
                    div { label for="offset" { "Offset from UTC (minutes)" } input #offset type="number" name="offset" min="-720" max="840" step="15" value=(p.utc_offset_minutes); }
                    p { button type="submit" { "Show" } " " button.print type="button" { "Print or save as PDF" } }
                }
            };
            let body = match compute(&readings, p) {
                Err(e) => html! { h1 { "AGP report" } p { "Patient " code { (patient) } ": " (e) " (" (from_date) " to " (to_date) ")." } (form) },
                Ok(r) => render(&patient, &r, &sourced, &from_date, &to_date, form),
            };
            Ok(page(&v, "AGP report", &nav, body))
        }
        .await,
    )
}

fn render(
    patient: &ParticipantId,
    r: &AgpReport,
    sourced: &[Sourced],
    from_date: &str,
    to_date: &str,
    form: Markup,
) -> Markup {
    let mut txs: Vec<&Hash32> = sourced.iter().map(|s| &s.tx).collect();
    txs.sort();
    txs.dedup();
    let (lo, hi) =
        (sourced.iter().map(|s| s.height).min().unwrap_or(0), sourced.iter().map(|s| s.height).max().unwrap_or(0));
    let days = r.period.days();
    let csv =
        format!("/ui/patients/{patient}/agp.csv?from={from_date}&to={to_date}&offset={}", r.period.utc_offset_minutes);
    html! {
        h1 { "AGP report" }
        p { "Patient " code { (patient) } ". " strong { (from_date) " to " (to_date) } " (" (format!("{days:.0}")) " days), times of day at UTC"
            (format!("{:+}", r.period.utc_offset_minutes as f64 / 60.0)) ". Ambulatory Glucose Profile after the international consensus (Battelino et al. 2019, 2023)." }
        @if days < 14.0 { p.notice { "The consensus recommends 14 days of data; this report covers " (format!("{days:.0}")) "." } }
        @if r.active_percent < 70.0 { p.notice { "CGM was active " (format!("{:.0}", r.active_percent)) "% of the time; the consensus asks for at least 70% for a reliable report." } }
        (form)
        h2 { "Glucose statistics and targets" }
        div.cards {
            (figure("mean", r.mean_mg_dl, format!("{:.0}", r.mean_mg_dl), "mg/dL", ""))
            (figure("gmi", r.gmi_percent, format!("{:.1}", r.gmi_percent), "%", "from the mean: 3.31 + 0.02392 × mean"))
            (figure("cv", r.cv_percent, format!("{:.1}", r.cv_percent), "%", "goal ≤ 36%"))
            (figure("active", r.active_percent, format!("{:.1}", r.active_percent), "%", "goal ≥ 70%"))
        }
        h2 { "Time in ranges" }
        div.cards {
            div { (ranges_bar(r)) }
            table #time-in-ranges {
                thead { tr { th scope="col" { "Range" } th.num scope="col" { "Time" } th.num scope="col" { "Readings" } th scope="col" { "Goal" } } }
                tbody {
                    @for (i, b) in r.bands.iter().enumerate().rev() {
                        @let (at_least, goal) = b.band.goal();
                        tr data-band=(band_key(b.band)) data-value=(format!("{:.6}", b.percent)) {
                            th scope="row" { svg width="12" height="12" aria-hidden="true" { rect width="12" height="12" fill=(BAND_COLOURS[i]) {} } " " (b.band.label()) }
                            td.num { (format!("{:.1}%", b.percent)) }
                            td.num { (b.readings) }
                            td { (if at_least { "more than " } else { "less than " }) (format!("{goal:.0}%")) }
                        }
                    }
                }
            }
        }
        h2 { "Ambulatory glucose profile" }
        (modal_day(r))
        details {
            summary { "The profile as a table (percentiles by time of day, mg/dL)" }
            table #modal-day {
                thead { tr { th scope="col" { "From" } th.num scope="col" { "Readings" } th.num { "5%" } th.num { "25%" } th.num { "50%" } th.num { "75%" } th.num { "95%" } } }
                tbody {
                    @for b in &r.modal_day {
                        tr {
                            td { (clock(b.start_minute as i64 * 60_000, 0)) }
                            td.num { (b.readings) }
                            @match b.percentiles {
                                Some(ps) => { @for x in ps { td.num { (format!("{x:.0}")) } } }
                                None => { @for _ in 0..5 { td.num { "–" } } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Daily glucose profiles" }
        div.days {
            @for d in &r.days {
                figure { figcaption { (d.date) } (daily(d)) }
            }
        }
        h2 { "Where these figures come from" }
        p #provenance data-readings=(r.readings) data-transactions=(txs.len()) {
            (r.readings) " CGM readings (LOINC 99504-3 / 105272-9) in " (txs.len()) " committed transactions, blocks " (lo) " to " (hi)
            ", each verified to the chain's genesis; " (r.active_slots) " of " (r.slots) " five-minute slots hold a reading. "
            a href=(csv) download { "Download the readings with their transactions (CSV)" } "."
        }
    }
}

fn band_key(b: Band) -> &'static str {
    match b {
        Band::VeryLow => "very_low",
        Band::Low => "low",
        Band::InRange => "in_range",
        Band::High => "high",
        Band::VeryHigh => "very_high",
    }
}

/// The readings behind a report, one line each with the transaction and block that hold it.
pub async fn readings_csv(req: HttpRequest, api: Api, web: Web, id: web::Path<String>) -> HttpResponse {
    finish(
        async {
            let v = viewer(&req, &api, &web).await?;
            let patient = patient_of(&id)?;
            let (_, mut sourced) = gather(&req, &api, &v, &patient).await?;
            sourced.sort_by_key(|s| (s.reading.at_ms, s.height, s.index));
            let mut out = String::from("timestamp,glucose_mg_dl,tx_hash,block_height,tx_index\n");
            for s in &sourced {
                out.push_str(&format!(
                    "{},{},{},{},{}\n",
                    Timestamp::from_unix_ms(s.reading.at_ms).to_rfc3339(),
                    s.reading.mg_dl,
                    s.tx,
                    s.height,
                    s.index
                ));
            }
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header(("content-disposition", format!("attachment; filename=\"agp-{patient}.csv\"")))
                .insert_header(("cache-control", "no-store"))
                .body(out))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_period_is_the_fourteen_days_ending_with_the_last_reading_day() {
        let last = Timestamp::parse("2026-03-05T23:55:00Z").unwrap().unix_ms();
        let p = period(&Query::default(), Some(last)).unwrap();
        assert_eq!(Timestamp::from_unix_ms(p.to_ms).to_rfc3339(), "2026-03-06T00:00:00Z");
        assert_eq!(p.to_ms - p.from_ms, 14 * DAY_MS);
        let q = Query { from: Some("2026-03-02".into()), to: Some("2026-03-05".into()), offset: Some(60) };
        let p = period(&q, None).unwrap();
        assert_eq!(Timestamp::from_unix_ms(p.from_ms).to_rfc3339(), "2026-03-01T23:00:00Z");
        assert_eq!(p.to_ms - p.from_ms, 4 * DAY_MS);
    }

    #[test]
    fn bad_periods_are_refused_with_a_reason() {
        let q =
            |from: &str, to: &str, offset| Query { from: Some(from.into()), to: Some(to.into()), offset: Some(offset) };
        assert!(period(&q("2026-03-05", "2026-03-01", 0), None).unwrap_err().detail.contains("before its start"));
        assert!(period(&q("2026-01-01", "2026-06-01", 0), None).unwrap_err().detail.contains("90 days"));
        assert!(period(&q("yesterday", "2026-03-01", 0), None).unwrap_err().detail.contains("YYYY-MM-DD"));
        assert!(period(&q("2026-03-01", "2026-03-02", 900), None).unwrap_err().detail.contains("offset"));
    }
}
