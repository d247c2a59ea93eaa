//! What the SMS-code forms show: `/bind` (a first-time WeChat binds a phone) and `/login/sms`
//! (logging in with a code), each in a phone step and a code step with its error next to its
//! field. The GET pages and the POST answers draw the same [`CodeForms`] component.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use leptos::prelude::*;

use crate::{
    error::AppResult,
    phone::Phone,
    session::{PhoneStep, WebSession},
    ui::{CsrfField, Lang, Shell, Text, fill},
};

/// Which of the two SMS-code forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// `/bind`.
    Bind,
    /// `/login/sms`; `open` when a new phone makes an account.
    Login { open: bool },
}

impl Flow {
    /// The session slot of the phone a code went to.
    pub(super) fn step(self) -> PhoneStep {
        match self {
            Flow::Bind => PhoneStep::Bind,
            Flow::Login { .. } => PhoneStep::Login,
        }
    }

    /// The page's path.
    pub(super) fn page(self) -> &'static str {
        match self {
            Flow::Bind => "/bind",
            Flow::Login { .. } => "/login/sms",
        }
    }

    fn send_action(self) -> &'static str {
        match self {
            Flow::Bind => "/bind/code",
            Flow::Login { .. } => "/login/sms/code",
        }
    }

    fn verify_action(self) -> &'static str {
        match self {
            Flow::Bind => "/bind/verify",
            Flow::Login { .. } => "/login/sms/verify",
        }
    }

    fn change_link(self) -> &'static str {
        match self {
            Flow::Bind => "/bind?change=1",
            Flow::Login { .. } => "/login/sms?change=1",
        }
    }

    fn title(self, t: &Text) -> &'static str {
        match self {
            Flow::Bind => t.bind_title,
            Flow::Login { .. } => t.sms_login_title,
        }
    }

    fn hint(self, t: &Text) -> &'static str {
        match self {
            Flow::Bind => t.bind_hint,
            Flow::Login { open: false } => t.sms_login_hint,
            Flow::Login { open: true } => t.sms_login_hint_open,
        }
    }

    /// "Sent to {}": a login's says "if this number can log in", so that it tells nobody
    /// whether a number is registered.
    fn sent(self, t: &Text) -> &'static str {
        match self {
            Flow::Bind => t.code_sent,
            Flow::Login { .. } => t.sms_login_sent,
        }
    }
}

/// Which step of the form to show.
pub(super) enum BindForm {
    /// Ask for the phone number.
    Phone {
        value: String,
        error: Option<String>,
    },
    /// Ask for the code sent to `phone`.
    Code { phone: Phone, wait: i64, note: Note },
}

/// What the code step says besides asking for the code.
pub(super) enum Note {
    /// Nothing: the code was sent.
    None,
    /// What was wrong with what was typed, under the field.
    Error(String),
    /// The code is dead (used up or expired): the field and its button are off, and the way on
    /// is a new code.
    Dead(String),
    /// Something to know that is not an error (a resend asked for too soon), in place of
    /// "sent".
    Notice(String),
}

/// The answer to a POST of `flow`'s forms: post/redirect/get. What the page must show next
/// (`form`, and `status` for the page's own answer) is kept in the session, and the browser
/// goes back to the form's page, so the address is always the page's and a reload sends
/// nothing again.
pub(super) async fn render(
    flow: Flow,
    session: &WebSession,
    form: BindForm,
    status: StatusCode,
) -> AppResult<Response> {
    render_refused(flow, session, form, status, None).await
}

/// [`render`] for an answer that says when to try again (`Retry-After`, on the POST's answer
/// and on the page it goes back to).
pub(super) async fn render_refused(
    flow: Flow,
    session: &WebSession,
    form: BindForm,
    status: StatusCode,
    retry_after: Option<i64>,
) -> AppResult<Response> {
    let mut shown = Shown::of(form, status);
    shown.retry_after = retry_after;
    session.set_shown(flow.step(), &shown).await?;
    let mut response = Redirect::to(flow.page()).into_response();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(seconds),
        );
    }
    Ok(response)
}

/// What a form's page shows after a POST, as the session keeps it between the two.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Shown {
    /// The phone step (with what was typed) or the code step (the phone's national number).
    code_step: bool,
    value: String,
    note: NoteKind,
    text: String,
    /// The status the page answers with: that of what it shows (a refusal is a 4xx).
    status: u16,
    /// Seconds until a refused send may be tried again.
    #[serde(default)]
    pub(super) retry_after: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum NoteKind {
    None,
    Error,
    Dead,
    Notice,
}

impl Shown {
    fn of(form: BindForm, status: StatusCode) -> Shown {
        let status = status.as_u16();
        match form {
            BindForm::Phone { value, error } => Shown {
                code_step: false,
                value,
                note: if error.is_some() {
                    NoteKind::Error
                } else {
                    NoteKind::None
                },
                text: error.unwrap_or_default(),
                status,
                retry_after: None,
            },
            BindForm::Code { phone, note, .. } => {
                let (note, text) = match note {
                    Note::None => (NoteKind::None, String::new()),
                    Note::Error(t) => (NoteKind::Error, t),
                    Note::Dead(t) => (NoteKind::Dead, t),
                    Note::Notice(t) => (NoteKind::Notice, t),
                };
                Shown {
                    code_step: true,
                    value: phone.national().to_owned(),
                    note,
                    text,
                    status,
                    retry_after: None,
                }
            }
        }
    }

    /// The form again, with `wait`, the seconds until a resend as they are now.
    pub(super) fn form(self, wait: i64) -> (BindForm, StatusCode) {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let phone = self.code_step.then(|| Phone::parse(&self.value)).flatten();
        let form = match phone {
            Some(phone) => {
                let note = match self.note {
                    NoteKind::None => Note::None,
                    NoteKind::Error => Note::Error(self.text),
                    NoteKind::Dead => Note::Dead(self.text),
                    NoteKind::Notice => Note::Notice(self.text),
                };
                BindForm::Code { wait, phone, note }
            }
            None => BindForm::Phone {
                value: self.value,
                error: (self.note != NoteKind::None).then_some(self.text),
            },
        };
        (form, status)
    }
}

/// The page of `flow` showing `form`, its forms carrying `csrf`.
#[component]
pub(super) fn CodeForms(flow: Flow, form: BindForm, csrf: String) -> impl IntoView {
    let t: &'static Text = expect_context::<Lang>().text();
    let title = flow.title(t);
    let body = match form {
        BindForm::Phone { value, error } => {
            let invalid = error.is_some().to_string();
            view! {
                <h1>{title}</h1>
                <p class="hint">{flow.hint(t)}</p>
                <form id="send-code-form" method="post" action=flow.send_action()>
                    <CsrfField token=csrf />
                    <label for="phone">{t.phone_label}</label>
                    <div class="phone-field">
                        <span class="prefix" title=t.phone_prefix_label>"+86"</span>
                        <input id="phone" name="phone" type="tel" autocomplete="tel-national"
                            inputmode="tel" required placeholder=t.phone_placeholder value=value
                            aria-invalid=invalid aria-describedby="phone-hint phone-error" />
                    </div>
                    <p id="phone-hint" class="sr-only">{t.phone_prefix_label}</p>
                    {error.map(|e| view! { <p id="phone-error" class="field-error" role="alert">{e}</p> })}
                    <button id="send-code" type="submit">{t.send_code}</button>
                </form>
            }
            .into_any()
        }
        BindForm::Code { phone, wait, note } => {
            let dead = matches!(note, Note::Dead(_));
            // One line at the top: "sent", or what to know instead.
            let banner = match &note {
                Note::None | Note::Error(_) => {
                    view! { <p id="code-sent" class="info">{fill(flow.sent(t), &[&phone.masked()])}</p> }.into_any()
                }
                Note::Notice(text) => view! { <p id="code-notice" class="notice" role="status">{text.clone()}</p> }.into_any(),
                Note::Dead(text) => view! {
                    <p id="code-dead" class="notice refused" role="alert">{text.clone()}</p>
                }
                .into_any(),
            };
            let error = match note {
                Note::Error(e) => Some(e),
                _ => None,
            };
            let invalid = error.is_some().to_string();
            // Without JavaScript the button can't count down: it stays enabled and says when it
            // will work (too early, the answer says how long to wait); app.js counts instead.
            let when = (wait > 0 && !dead).then(|| {
                let at = crate::util::now() + wait;
                view! { <p id="resend-when" class="muted">{fill(t.resend_when, &[&crate::ui::china_clock_seconds(at)])}</p> }
            });
            let resend_label = if dead { t.send_new_code } else { t.resend_code };
            view! {
                <h1>{title}</h1>
                {banner}
                <form id="verify-form" method="post" action=flow.verify_action()>
                    <CsrfField token=csrf.clone() />
                    <label for="code">{t.code_label}</label>
                    <input id="code" name="code" type="text" inputmode="numeric"
                        autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required
                        autofocus=!dead disabled=dead aria-invalid=invalid aria-describedby="code-error" />
                    {error.map(|e| view! { <p id="code-error" class="field-error" role="alert">{e}</p> })}
                    <button id="verify" type="submit" disabled=dead>{t.verify}</button>
                </form>
                <form id="resend-form" class="inline" method="post" action=flow.send_action()>
                    <CsrfField token=csrf />
                    <input type="hidden" name="phone" value=phone.national().to_owned() />
                    <button id="resend" class=if dead { "" } else { "secondary" } type="submit"
                        data-wait=wait.to_string()
                        data-label=resend_label data-wait-label=t.resend_wait>
                        {resend_label}
                    </button>
                    {when}
                </form>
                <p><a id="change-phone" href=flow.change_link()>{t.change_phone}</a></p>
            }
            .into_any()
        }
    };
    let back = matches!(flow, Flow::Login { .. }).then(|| {
        view! { <p><a id="use-qr" href="/login?qr=1">{t.use_qr_instead}</a></p> }
    });
    view! { <Shell title=title script=true brand=true>{body}{back}</Shell> }
}
