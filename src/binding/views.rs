//! What `/bind` shows: the phone step and the code step, each with its error next to its field.
//! The GET page and the POST answers draw the same [`Bind`] component.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use leptos::prelude::*;

use crate::{
    error::AppResult,
    phone::Phone,
    session::WebSession,
    state::AppState,
    ui::{CsrfField, Lang, Shell, Text, fill, render},
};

/// Which step of the form to show.
pub(super) enum BindForm {
    /// Ask for the phone number.
    Phone {
        value: String,
        error: Option<String>,
    },
    /// Ask for the code sent to `phone`.
    Code {
        phone: Phone,
        wait: i64,
        error: Option<String>,
    },
}

/// The `/bind` page showing `form`, answered with `status` (a POST's answer).
pub(super) async fn render(
    state: &AppState,
    lang: Lang,
    session: &WebSession,
    form: BindForm,
    status: StatusCode,
) -> AppResult<Response> {
    let csrf = session.csrf_token().await?;
    let page = render::document(lang, move || view! { <Bind form csrf /> }).await;
    let mut response = (status, page).into_response();
    if let Some(policy) = super::form_policy(state, session).await? {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    Ok(response)
}

/// The `/bind` page showing `form`, its forms carrying `csrf`.
#[component]
pub(super) fn Bind(form: BindForm, csrf: String) -> impl IntoView {
    let t: &'static Text = expect_context::<Lang>().text();
    let body = match form {
        BindForm::Phone { value, error } => {
            let invalid = error.is_some().to_string();
            view! {
                <h1>{t.bind_title}</h1>
                <p class="hint">{t.bind_hint}</p>
                <form id="send-code-form" method="post" action="/bind/code">
                    <CsrfField token=csrf />
                    <label for="phone">{t.phone_label}</label>
                    <input id="phone" name="phone" type="tel" autocomplete="tel" inputmode="tel"
                        required placeholder=t.phone_placeholder value=value
                        aria-invalid=invalid aria-describedby="phone-error" />
                    {error.map(|e| view! { <p id="phone-error" class="field-error" role="alert">{e}</p> })}
                    <button id="send-code" type="submit">{t.send_code}</button>
                </form>
            }
            .into_any()
        }
        BindForm::Code { phone, wait, error } => {
            let invalid = error.is_some().to_string();
            view! {
                <h1>{t.bind_title}</h1>
                <p class="info">{fill(t.code_sent, &[&phone.masked()])}</p>
                <form id="verify-form" method="post" action="/bind/verify">
                    <CsrfField token=csrf.clone() />
                    <label for="code">{t.code_label}</label>
                    <input id="code" name="code" type="text" inputmode="numeric"
                        autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required
                        autofocus aria-invalid=invalid aria-describedby="code-error" />
                    {error.map(|e| view! { <p id="code-error" class="field-error" role="alert">{e}</p> })}
                    <button id="verify" type="submit">{t.verify}</button>
                </form>
                <form id="resend-form" class="inline" method="post" action="/bind/code">
                    <CsrfField token=csrf />
                    <input type="hidden" name="phone" value=phone.national().to_owned() />
                    <button id="resend" class="secondary" type="submit" data-wait=wait.to_string()
                        data-label=t.resend_code data-wait-label=t.resend_wait>
                        {if wait > 0 { fill(t.resend_wait, &[&wait]) } else { t.resend_code.to_owned() }}
                    </button>
                </form>
                <p><a id="change-phone" href="/bind?change=1">{t.change_phone}</a></p>
            }
            .into_any()
        }
    };
    view! { <Shell title=t.bind_title script=true>{body}</Shell> }
}
