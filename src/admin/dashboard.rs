//! `GET /admin`: totals, new bindings and logins per day for the last 30 days (an SVG chart
//! drawn here), and the latest scans, which `public/app.js` keeps live from `/admin/events`.

use leptos::prelude::*;

use crate::{
    admin::{
        guard::AdminUser,
        layout::{AdminShell, Section},
        times::{UTC_OFFSET_SECONDS, day_label, format_timestamp, local_day},
    },
    client_info::describe_user_agent,
    pages::{PageRequest, page},
    store::{Dashboard, LoginMethod, LoginRow, Outcome},
    ui::{Lang, Text, mask_phone},
    util::now,
};

/// Days shown in the chart.
const DAYS: i64 = 30;
/// Scans listed on the dashboard.
const LATEST: i64 = 20;

/// `GET /admin`.
#[component]
pub(super) fn DashboardPage() -> impl IntoView {
    page(async |mut request: PageRequest| {
        let AdminUser(_admin) = request.extract().await?;
        let today = local_day(now());
        let first_day = today - (DAYS - 1);
        // The first second of `first_day` in UTC+8.
        let since = first_day * 86_400 - UTC_OFFSET_SECONDS;
        let data = request
            .state
            .store
            .admin
            .dashboard(since, UTC_OFFSET_SECONDS, LATEST)
            .await?;
        let series: Vec<DayCount> = (first_day..=today)
            .map(|day| DayCount {
                day,
                bindings: data.bindings.get(&day).copied().unwrap_or(0),
                logins: data.logins.get(&day).copied().unwrap_or(0),
            })
            .collect();
        Ok(view! { <DashboardView data series /> }.into_any())
    })
}

/// The dashboard: totals, the chart of `series`, the latest scans.
#[component]
fn DashboardView(data: Dashboard, series: Vec<DayCount>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let Dashboard {
        users,
        disabled,
        following,
        latest,
        ..
    } = data;
    let last_id = latest.first().map(|row| row.id).unwrap_or(0);
    let empty = latest
        .is_empty()
        .then(|| view! { <p id="no-logins" class="muted">{t.admin_no_logins}</p> });
    let items = latest
        .into_iter()
        .map(|row| view! { <LoginItem row /> })
        .collect_view();
    view! {
        <AdminShell title=t.admin_nav_dashboard section=Section::Dashboard script=true>
            <h1>{t.admin_nav_dashboard}</h1>
            <div class="totals">
                <div><span id="total-users" class="total">{users}</span>{t.admin_total_users}</div>
                <div><span id="total-following" class="total">{following}</span>{t.admin_total_following}</div>
                <div><span id="total-disabled" class="total">{disabled}</span>{t.admin_total_disabled}</div>
            </div>
            <h2>{t.admin_chart_title}</h2>
            <figure class="chart">
                <div><Chart series /></div>
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
        </AdminShell>
    }
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
const LEFT: i64 = 40;
const RIGHT: i64 = 22;
const BOTTOM: i64 = 26;
// The SVG shrinks to a phone's width (about 350 px for these 600 units): text this size still
// reads there at about 9 px, and a date every week leaves it room.
const FONT_SIZE: i64 = 15;
const DATE_EVERY: usize = 7;
const TOP: i64 = 10;

/// Bars per day: new bindings and logins side by side, with the day's figures in each bar's
/// `<title>` (a tooltip, and what a screen reader reads).
#[component]
fn Chart(series: Vec<DayCount>) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let max = series
        .iter()
        .map(|d| d.bindings.max(d.logins))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_height = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT - RIGHT) as f64 / series.len().max(1) as f64;
    let bar = (slot * 0.38).max(1.0);
    let y_of = move |v: i64| TOP as f64 + plot_height as f64 * (1.0 - v as f64 / max as f64);
    let n = |v: f64| format!("{v:.1}");
    // Axis and gridlines at 0, half and the maximum.
    let grid = [0, max / 2, max]
        .into_iter()
        .map(|v| {
            let y = y_of(v);
            view! {
                <line x1=LEFT.to_string() x2=(WIDTH - RIGHT).to_string() y1=n(y) y2=n(y) stroke="#e5e6eb" />
                <text x=(LEFT - 5).to_string() y=n(y + 5.0) text-anchor="end" fill="#6b7280">{v}</text>
            }
        })
        .collect_view();
    let days = series.len();
    let bars = series
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let x0 = LEFT as f64 + slot * i as f64 + slot * 0.1;
            let label = day_label(d.day);
            let pair = [
                (d.bindings, "#067d3e", t.admin_chart_bindings),
                (d.logins, "#1a73e8", t.admin_chart_logins),
            ]
            .into_iter()
            .enumerate()
            .map(|(j, (value, color, name))| {
                let y = y_of(value);
                let h = (HEIGHT - BOTTOM) as f64 - y;
                view! {
                    <rect class="bar" x=n(x0 + bar * j as f64) y=n(y) width=n(bar) height=n(h) fill=color>
                        <title>{format!("{label} {name}: {value}")}</title>
                    </rect>
                }
            })
            .collect_view();
            // A date under every seventh day, counting back from today.
            let date = (days - 1 - i).is_multiple_of(DATE_EVERY).then(|| {
                view! {
                    <text x=n(x0 + bar) y=(HEIGHT - 6).to_string() text-anchor="middle" fill="#6b7280">
                        {label.clone()}
                    </text>
                }
            });
            view! { {pair} {date} }
        })
        .collect_view();
    view! {
        <svg xmlns="http://www.w3.org/2000/svg" viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img"
            aria-label=t.admin_chart_label font-size=FONT_SIZE.to_string() font-family="sans-serif">
            {grid}
            {bars}
        </svg>
    }
}

/// The label of a login outcome.
pub fn outcome_label(outcome: Outcome, t: &Text) -> &'static str {
    match outcome {
        Outcome::LoggedIn => t.admin_outcome_logged_in,
        Outcome::NeedsBind => t.admin_outcome_needs_bind,
        Outcome::Disabled => t.admin_outcome_disabled,
    }
}

/// The label of a login method.
pub fn method_label(method: LoginMethod, t: &Text) -> &'static str {
    match method {
        LoginMethod::Scan => t.method_scan,
        LoginMethod::WechatOauth => t.method_wechat_oauth,
        LoginMethod::Sms => t.method_sms,
    }
}

/// One `<li>` of the latest scans (also what `/admin/events` pushes).
#[component]
pub fn LoginItem(row: LoginRow) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let who = match (row.user_id, &row.phone) {
        (Some(id), Some(phone)) => view! {
            <a href=format!("/admin/users/{id}")>{mask_phone(phone)}</a>
        }
        .into_any(),
        _ if row.openid.is_empty() => view! { <span class="muted">"—"</span> }.into_any(),
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
            <span class=format!("method method-{}", row.method.as_str())>{method_label(row.method, t)}</span>
            " "
            <span class="muted">{place}</span>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::render;

    #[test]
    fn chart_has_two_bars_a_day() {
        let series: Vec<DayCount> = (0..30)
            .map(|i| DayCount {
                day: 20_000 + i,
                bindings: i,
                logins: 2 * i,
            })
            .collect();
        let svg = render::fragment(Lang::En, move || view! { <Chart series /> });
        assert_eq!(svg.matches("class=\"bar\"").count(), 60, "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("Logins: 58"));
        // Every seventh day has its date under it, today's first.
        assert_eq!(svg.matches("text-anchor=\"middle\"").count(), 5);
    }
}
