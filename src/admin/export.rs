//! `GET /admin/users.csv`: the users list of `/admin/users` (same query) as CSV, streamed.

use axum::{
    body::{Body, Bytes},
    extract::{RawQuery, State},
    http::header,
    response::{IntoResponse, Response},
};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    admin::{guard::AdminUser, times::format_timestamp},
    error::{AppError, AppResult},
    state::AppState,
    store::{ListQuery, Store, UserRow},
    ui::Lang,
};

/// The CSV header line.
const CSV_HEADER: &str =
    "id,phone,openid,unionid,following,admin,disabled,bound_at,last_login_at\r\n";
/// Bytes gathered before a chunk is sent.
const CSV_CHUNK: usize = 16 * 1024;

/// `GET /admin/users.csv`: the filtered list (all pages, `after` ignored), full phone numbers,
/// times as `YYYY-MM-DD HH:MM:SS` in UTC+8. Rows go out as the database yields them, in
/// chunks of about 16 KiB, through a small bounded channel: a slow download holds back the
/// reading and 100,000 rows never sit in memory.
pub async fn export(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    lang: Lang,
    RawQuery(raw): RawQuery,
) -> AppResult<Response> {
    let mut query = ListQuery::parse(lang, raw.as_deref())?;
    query.after = None;
    tracing::info!(admin = admin.id, "users exported as CSV");
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        if let Err(e) = write_csv(&state.store, query, &sender).await {
            tracing::error!(error = %e, "CSV export failed midway");
            // An error ends the body abruptly, so the download is seen to fail rather than
            // look complete.
            let _ = sender
                .send(Err(std::io::Error::other("export failed")))
                .await;
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"users.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(ReceiverStream::new(receiver)),
    )
        .into_response())
}

/// Streams the CSV of `query` into `sender`; stops quietly when the download is abandoned.
async fn write_csv(
    store: &Store,
    query: ListQuery,
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), AppError> {
    let (rows_tx, mut rows) = tokio::sync::mpsc::channel(2);
    let admin = store.admin.clone();
    tokio::spawn(async move { admin.users_export(query, rows_tx).await });
    let mut chunk = String::with_capacity(CSV_CHUNK + 512);
    chunk.push_str(CSV_HEADER);
    while let Some(batch) = rows.recv().await {
        for row in batch? {
            csv_line(&mut chunk, &row);
            if chunk.len() >= CSV_CHUNK {
                let full = std::mem::replace(&mut chunk, String::with_capacity(CSV_CHUNK + 512));
                if sender.send(Ok(Bytes::from(full))).await.is_err() {
                    return Ok(()); // the browser went away
                }
            }
        }
    }
    if !chunk.is_empty() {
        let _ = sender.send(Ok(Bytes::from(chunk))).await;
    }
    Ok(())
}

/// Appends one CSV record (RFC 4180, CRLF line ends).
fn csv_line(out: &mut String, row: &UserRow) {
    let time = |t: Option<i64>| t.map(format_timestamp).unwrap_or_default();
    let bool01 = |b: bool| if b { "1" } else { "0" };
    let fields: [&str; 9] = [
        &row.id.to_string(),
        &row.phone,
        row.openid.as_deref().unwrap_or(""),
        row.unionid.as_deref().unwrap_or(""),
        bool01(row.following),
        bool01(row.is_admin),
        bool01(row.disabled),
        &time(row.bound_at),
        &time(row.last_login_at),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, field);
    }
    out.push_str("\r\n");
}

/// Quotes a field when it holds a comma, quote or line break (quotes doubled). An id that
/// starts like a spreadsheet formula gets a leading `'` so opening the file can't run it;
/// phone numbers (`+86...`) are left as they are.
fn csv_field(out: &mut String, field: &str) {
    let formula = field.starts_with(['=', '@', '-', '\t', '\r'])
        || (field.starts_with('+') && !field[1..].bytes().all(|b| b.is_ascii_digit()));
    let needs_quotes = formula || field.contains([',', '"', '\n', '\r']);
    if !needs_quotes {
        out.push_str(field);
        return;
    }
    out.push('"');
    if formula {
        out.push('\'');
    }
    for c in field.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut out = String::new();
        for field in [
            "plain",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            "+8613812345678",
            "=cmd()",
            "-x",
        ] {
            csv_field(&mut out, field);
            out.push('|');
        }
        assert_eq!(
            out,
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|+8613812345678|\"'=cmd()\"|\"'-x\"|"
        );
    }
}
