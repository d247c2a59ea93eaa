//! `GET /admin`: totals, new bindings and logins per day for the last 30 days (an SVG chart
//! drawn here), and the latest scans, which `public/app.js` keeps live from `/admin/events`.

use axum::{extract::State, response::Html};
use leptos::prelude::*;

use crate::{
    admin::{Section, day_label, escape, format_timestamp, guard::AdminUser, local_day},
    client_info::describe_user_agent,
    error::AppResult,
    state::AppState,
    store::{Dashboard, LoginRow, Outcome},
    ui::{Lang, Text, mask_phone},
    util::now,
};

/// Days shown in the chart.
const DAYS: i64 = 30;
/// Scans listed on the dashboard.
const LATEST: i64 = 20;

/// `GET /admin`.
pub async fn page(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
    lang: Lang,
) -> AppResult<Html<String>> {
    let t = lang.text();
    let today = local_day(now());
    let first_day = today - (DAYS - 1);
    // The first second of `first_day` in UTC+8.
    let since = first_day * 86_400 - super::UTC_OFFSET_SECONDS;
    let Dashboard {
        users,
        disabled,
        following,
        bindings,
        logins,
        latest,
    } = state
        .store
        .admin
        .dashboard(since, super::UTC_OFFSET_SECONDS, LATEST)
        .await?;
    let series: Vec<DayCount> = (first_day..=today)
        .map(|day| DayCount {
            day,
            bindings: bindings.get(&day).copied().unwrap_or(0),
            logins: logins.get(&day).copied().unwrap_or(0),
        })
        .collect();

    let last_id = latest.first().map(|row| row.id).unwrap_or(0);
    let items = latest
        .iter()
        .map(|row| login_item(row, lang))
        .collect_view();
    let empty = latest
        .is_empty()
        .then(|| view! { <p id="no-logins" class="muted">{t.admin_no_logins}</p> });

    let body = view! {
        <h1>{t.admin_nav_dashboard}</h1>
        <div class="totals">
            <div><span id="total-users" class="total">{users}</span>{t.admin_total_users}</div>
            <div><span id="total-following" class="total">{following}</span>{t.admin_total_following}</div>
            <div><span id="total-disabled" class="total">{disabled}</span>{t.admin_total_disabled}</div>
        </div>
        <h2>{t.admin_chart_title}</h2>
        <figure class="chart">
            <div inner_html=chart_svg(&series, t)></div>
            <figcaption class="legend">
                <span class="key key-bindings"></span>{t.admin_chart_bindings}
                " "
                <span class="key key-logins"></span>{t.admin_chart_logins}
            </figcaption>
        </figure>
        <h2>{t.admin_latest_logins}</h2>
        <p class="muted">{t.admin_latest_live}</p>
        {empty}
        <ul id="latest-logins" class="latest" data-live="1" data-last-id=last_id.to_string()
            data-max=LATEST.to_string()>
            {items}
        </ul>
    };
    Ok(super::page(
        lang,
        t.admin_nav_dashboard,
        Section::Dashboard,
        true,
        body,
    ))
}

/// One day of the chart.
struct DayCount {
    day: i64,
    bindings: i64,
    logins: i64,
}

// Chart geometry, in SVG user units (the SVG scales to its box).
const WIDTH: i64 = 600;
const HEIGHT: i64 = 200;
const LEFT: i64 = 34;
const RIGHT: i64 = 18;
const BOTTOM: i64 = 22;
const TOP: i64 = 10;

/// Bars per day: new bindings and logins side by side, with the day's figures in each bar's
/// `<title>` (a tooltip, and what a screen reader reads).
fn chart_svg(series: &[DayCount], t: &Text) -> String {
    let max = series
        .iter()
        .map(|d| d.bindings.max(d.logins))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_height = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT - RIGHT) as f64 / series.len().max(1) as f64;
    let bar = (slot * 0.38).max(1.0);
    let y_of = |v: i64| TOP as f64 + plot_height as f64 * (1.0 - v as f64 / max as f64);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}" font-size="10" font-family="sans-serif">"##,
        label = escape(t.admin_chart_label),
    );
    // Axis and gridlines at 0, half and the maximum.
    for v in [0, max / 2, max] {
        let y = y_of(v);
        svg.push_str(&format!(
            r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e6eb"/><text x="{x}" y="{ty:.1}" text-anchor="end" fill="#6b7280">{v}</text>"##,
            x = LEFT - 4,
            x2 = WIDTH - RIGHT,
            ty = y + 3.5,
        ));
    }
    for (i, d) in series.iter().enumerate() {
        let x0 = LEFT as f64 + slot * i as f64 + slot * 0.1;
        let label = day_label(d.day);
        for (j, (value, color, name)) in [
            (d.bindings, "#07c160", t.admin_chart_bindings),
            (d.logins, "#1a73e8", t.admin_chart_logins),
        ]
        .into_iter()
        .enumerate()
        {
            let y = y_of(value);
            let h = (HEIGHT - BOTTOM) as f64 - y;
            svg.push_str(&format!(
                r##"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{color}"><title>{label} {name}: {value}</title></rect>"##,
                x = x0 + bar * j as f64,
                name = escape(name),
            ));
        }
        // A date under every fifth day, counting back from today.
        if (series.len() - 1 - i).is_multiple_of(5) {
            svg.push_str(&format!(
                r##"<text x="{x:.1}" y="{y}" text-anchor="middle" fill="#6b7280">{label}</text>"##,
                x = x0 + bar,
                y = HEIGHT - 6,
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The label of a login outcome.
pub fn outcome_label(outcome: Outcome, t: &Text) -> &'static str {
    match outcome {
        Outcome::LoggedIn => t.admin_outcome_logged_in,
        Outcome::NeedsBind => t.admin_outcome_needs_bind,
        Outcome::Disabled => t.admin_outcome_disabled,
    }
}

/// One `<li>` of the latest scans (also what `/admin/events` pushes).
pub fn login_item(row: &LoginRow, lang: Lang) -> impl IntoView + 'static {
    let t = lang.text();
    let who = match (row.user_id, &row.phone) {
        (Some(id), Some(phone)) => view! {
            <a href=format!("/admin/users/{id}")>{mask_phone(phone)}</a>
        }
        .into_any(),
        _ => view! { <code>{row.openid.clone()}</code> }.into_any(),
    };
    let place = format!(
        "{} · {}",
        row.client_ip.as_deref().unwrap_or("?"),
        describe_user_agent(row.user_agent.as_deref().unwrap_or("")).unwrap_or_else(|| "?".into())
    );
    view! {
        <li data-id=row.id.to_string()>
            <time>{format_timestamp(row.at)}</time>
            " "
            {who}
            " "
            <span class=format!("outcome outcome-{}", row.outcome.as_str())>{outcome_label(row.outcome, t)}</span>
            " "
            <span class="muted">{place}</span>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::i18n::EN;

    #[test]
    fn chart_has_two_bars_a_day_and_escapes_its_labels() {
        let series: Vec<DayCount> = (0..30)
            .map(|i| DayCount {
                day: 20_000 + i,
                bindings: i,
                logins: 2 * i,
            })
            .collect();
        let svg = chart_svg(&series, &EN);
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 60);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Logins: 58"));
    }
}
