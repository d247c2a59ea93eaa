//! Every word wxlogin shows, in Chinese (the default) and English, kept in this one place.
//!
//! The language follows the browser's `Accept-Language`; replies in WeChat follow the language of
//! the browser that showed the QR code.
//!
//! Over 400 lines: it is two tables of text, one line per string, kept together so each
//! language stays complete.

use axum::{extract::FromRequestParts, http::request::Parts};

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Simplified Chinese (default).
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Picks the language the browser prefers most among the two we have; Chinese when it
    /// prefers neither or says nothing.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::Zh
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            // The first of equal weights wins, as browsers list them in order of preference.
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }

    /// The language of a request, from its `Accept-Language`.
    pub fn of(headers: &axum::http::HeaderMap) -> Lang {
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Lang::from_accept_language)
            .unwrap_or_default()
    }

    /// The code stored with a login scene.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// Parses [`Lang::code`].
    pub fn from_code(code: &str) -> Lang {
        if code == "en" { Lang::En } else { Lang::Zh }
    }

    /// The value of `<html lang>`.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// This language's words.
    pub fn text(self) -> &'static Text {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of(&parts.headers))
    }
}

/// Fills the `{}` placeholders of a text, in order.
pub fn fill(template: &str, args: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut args = args.iter();
    let mut rest = template;
    while let Some(i) = rest.find("{}") {
        out.push_str(&rest[..i]);
        if let Some(a) = args.next() {
            out.push_str(&a.to_string());
        }
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

/// The words of one language. `{}` marks a value filled in by [`fill`].
pub struct Text {
    pub site_name: &'static str,
    pub home_title: &'static str,
    pub logged_in_as: &'static str,
    pub logout: &'static str,
    pub logout_everywhere: &'static str,
    pub anonymous: &'static str,
    pub login_link: &'static str,

    pub login_title: &'static str,
    pub login_hint: &'static str,
    /// Names the site an OpenID Connect login returns to: `{}` is its name.
    pub login_for_site: &'static str,
    pub oidc_error_title: &'static str,
    pub qr_alt: &'static str,
    pub expires_in: &'static str,
    pub sandbox_link: &'static str,
    pub sandbox_note: &'static str,
    pub noscript_hint: &'static str,
    pub status_waiting: &'static str,
    pub status_authorized: &'static str,
    pub status_needs_bind: &'static str,
    pub status_rejected: &'static str,
    pub status_expired: &'static str,
    pub new_qr: &'static str,
    pub continue_link: &'static str,
    pub qr_unavailable: &'static str,

    pub bind_title: &'static str,
    pub bind_hint: &'static str,
    pub phone_label: &'static str,
    pub phone_placeholder: &'static str,
    pub send_code: &'static str,
    pub resend_code: &'static str,
    pub code_label: &'static str,
    pub verify: &'static str,
    pub code_sent: &'static str,
    pub resend_wait: &'static str,
    pub change_phone: &'static str,
    pub err_phone: &'static str,
    pub err_code_format: &'static str,
    pub err_code_wrong: &'static str,
    pub err_code_dead: &'static str,
    /// A wrong code on its last try.
    pub err_code_last_wrong: &'static str,
    pub err_no_code: &'static str,
    pub err_phone_taken: &'static str,
    pub err_wechat_taken: &'static str,
    pub err_sms_failed: &'static str,
    pub err_form_expired: &'static str,
    // SMS limits (binding): "{}" are the time (China time, HH:MM) and a duration.
    pub err_sms_limit_phone: &'static str,
    pub err_sms_limit_ip: &'static str,
    pub sms_limit_tomorrow: &'static str,
    pub sms_limit_minutes: &'static str,
    pub sms_limit_hours: &'static str,

    pub reply_logged_in: &'static str,
    pub reply_needs_bind: &'static str,
    pub reply_disabled: &'static str,
    pub reply_expired: &'static str,
    pub reply_used: &'static str,
    pub reply_where: &'static str,
    /// What the "where" line says when the User-Agent names nothing known.
    pub unknown_browser: &'static str,
    pub reply_welcome: &'static str,
    pub reply_help: &'static str,

    pub sandbox_title: &'static str,
    pub sandbox_intro: &'static str,
    pub sandbox_pick: &'static str,
    pub sandbox_new_user: &'static str,
    pub sandbox_scan: &'static str,
    pub sandbox_account: &'static str,
    pub sandbox_you_scanned: &'static str,
    pub sandbox_no_reply: &'static str,
    pub sandbox_bad_ticket: &'static str,
    pub sandbox_bad_openid: &'static str,
    pub sandbox_callback_failed: &'static str,
    pub sandbox_inbox_title: &'static str,
    pub sandbox_inbox_empty: &'static str,

    pub error_title: &'static str,
    pub error_not_found: &'static str,
    pub error_forbidden: &'static str,
    pub error_bad_request: &'static str,
    pub error_internal: &'static str,
    pub error_too_many: &'static str,
    pub error_unavailable: &'static str,
    pub back_home: &'static str,

    pub admin_title: &'static str,
    pub admin_nav_dashboard: &'static str,
    pub admin_nav_users: &'static str,
    pub admin_nav_home: &'static str,
    pub admin_total_users: &'static str,
    pub admin_total_following: &'static str,
    pub admin_total_disabled: &'static str,
    pub admin_chart_title: &'static str,
    pub admin_chart_label: &'static str,
    pub admin_chart_bindings: &'static str,
    pub admin_chart_logins: &'static str,
    pub admin_latest_logins: &'static str,
    pub admin_latest_live: &'static str,
    pub admin_no_logins: &'static str,
    pub admin_times_note: &'static str,
    pub admin_search_label: &'static str,
    pub admin_search_placeholder: &'static str,
    pub admin_sort_label: &'static str,
    pub admin_sort_bound: &'static str,
    pub admin_sort_last_login: &'static str,
    pub admin_any: &'static str,
    pub admin_yes: &'static str,
    pub admin_no: &'static str,
    pub admin_apply: &'static str,
    pub admin_clear: &'static str,
    pub admin_export_csv: &'static str,
    pub admin_next_page: &'static str,
    pub admin_first_page: &'static str,
    pub admin_no_users: &'static str,
    pub admin_never: &'static str,
    pub admin_col_id: &'static str,
    pub admin_col_phone: &'static str,
    pub admin_col_openid: &'static str,
    pub admin_col_unionid: &'static str,
    pub admin_col_following: &'static str,
    pub admin_col_admin: &'static str,
    pub admin_col_disabled: &'static str,
    pub admin_col_created_at: &'static str,
    pub admin_col_bound_at: &'static str,
    pub admin_col_last_login: &'static str,
    pub admin_col_time: &'static str,
    pub admin_col_ip: &'static str,
    pub admin_col_user_agent: &'static str,
    pub admin_col_outcome: &'static str,
    pub admin_col_actor: &'static str,
    pub admin_col_action: &'static str,
    pub admin_col_detail: &'static str,
    pub admin_user_title: &'static str,
    pub admin_back_to_users: &'static str,
    pub admin_not_bound: &'static str,
    pub admin_login_history: &'static str,
    pub admin_no_history: &'static str,
    pub admin_older: &'static str,
    pub admin_outcome_logged_in: &'static str,
    pub admin_outcome_needs_bind: &'static str,
    pub admin_outcome_disabled: &'static str,
    pub admin_audit_title: &'static str,
    pub admin_no_audit: &'static str,
    pub admin_actor_cli: &'static str,
    pub admin_actions_title: &'static str,
    pub admin_action_disable: &'static str,
    pub admin_action_enable: &'static str,
    pub admin_action_unbind: &'static str,
    pub admin_action_grant: &'static str,
    pub admin_action_revoke: &'static str,
    pub admin_self_note: &'static str,
    pub admin_err_self: &'static str,
    pub admin_nav_clients: &'static str,
    pub admin_clients_intro: &'static str,
    pub admin_no_clients: &'static str,
    pub admin_col_client_id: &'static str,
    pub admin_col_client_name: &'static str,
    pub admin_col_client_kind: &'static str,
    pub admin_client_public: &'static str,
    pub admin_client_confidential: &'static str,
    pub admin_redirect_uris: &'static str,
    pub admin_post_logout_uris: &'static str,
    pub admin_save: &'static str,
    pub admin_remove_client: &'static str,
    pub admin_client_title: &'static str,
    pub admin_back_to_clients: &'static str,
    pub admin_err_client_name: &'static str,
    pub admin_err_no_redirect: &'static str,
    pub admin_err_query: &'static str,

    // Phones and the WeChat browser.
    pub phone_title: &'static str,
    pub phone_save_steps: &'static str,
    pub save_qr: &'static str,
    pub open_in_wechat: &'static str,
    pub other_ways: &'static str,
    pub sms_login_link: &'static str,
    pub use_qr_instead: &'static str,
    pub wechat_title: &'static str,
    pub wechat_cancelled: &'static str,
    pub wechat_try_again: &'static str,
    pub wechat_link_dead: &'static str,
    pub wechat_code_bad: &'static str,
    pub wechat_snapshot: &'static str,
    pub follow_title: &'static str,
    pub follow_hint: &'static str,
    pub follow_qr_alt: &'static str,
    pub sms_login_title: &'static str,
    pub sms_login_hint: &'static str,
    pub sms_login_hint_open: &'static str,
    pub sms_login_sent: &'static str,
    pub method_scan: &'static str,
    pub method_wechat_oauth: &'static str,
    pub method_sms: &'static str,
    pub admin_col_method: &'static str,
    pub sandbox_oauth_title: &'static str,
    pub sandbox_oauth_intro: &'static str,
    pub sandbox_oauth_recent: &'static str,
    pub sandbox_oauth_as: &'static str,
    pub sandbox_oauth_snapshot: &'static str,
    pub sandbox_oauth_deny: &'static str,
    pub sandbox_oauth_bad_appid: &'static str,
    pub sandbox_oauth_bad_redirect: &'static str,
    pub sandbox_oauth_bad_scope: &'static str,
    pub qr_scanned: &'static str,
    pub qr_dead: &'static str,
    pub qr_tap_to_refresh: &'static str,
    pub disabled_contact: &'static str,
    pub disabled_contact_admin: &'static str,
    pub login_with_other_wechat: &'static str,
    pub privacy_link: &'static str,
    pub terms_link: &'static str,
    pub login_hint_account: &'static str,
}

/// 简体中文.
pub static ZH: Text = Text {
    site_name: "微信扫码登录",
    home_title: "首页",
    logged_in_as: "已登录：{}",
    logout: "退出登录",
    logout_everywhere: "在所有设备上退出",
    anonymous: "您尚未登录。",
    login_link: "微信扫码登录",

    login_title: "微信扫码登录",
    login_hint: "请使用微信扫描二维码，关注公众号后即可登录。",
    login_for_site: "登录后将返回「{}」。",
    oidc_error_title: "无法登录该网站",
    qr_alt: "登录二维码",
    expires_in: "二维码有效期剩余",
    sandbox_link: "打开模拟微信",
    sandbox_note: "沙盒模式：没有真实的微信，用模拟微信来扫这个二维码。",
    noscript_hint: "本页每 3 秒自动刷新一次。",
    status_waiting: "等待扫码…",
    status_authorized: "扫码成功，正在登录…",
    status_needs_bind: "扫码成功，首次登录请绑定手机号…",
    status_rejected: "该账号已被停用，无法登录。",
    status_expired: "二维码已失效。",
    new_qr: "获取新的二维码",
    continue_link: "继续",
    qr_unavailable: "暂时无法生成二维码，请稍后再试。",

    bind_title: "绑定手机号",
    bind_hint: "第一次用这个微信登录：请绑定手机号，以后扫码即可直接登录。",
    phone_label: "手机号",
    phone_placeholder: "138 0013 8000",
    send_code: "获取验证码",
    resend_code: "重新发送",
    code_label: "短信验证码",
    verify: "绑定并登录",
    code_sent: "验证码已发送至 {}，5 分钟内有效。",
    resend_wait: "{} 秒后可重新发送",
    change_phone: "换一个手机号",
    err_phone: "请输入有效的中国大陆手机号，例如 138 0013 8000。",
    err_code_format: "请输入短信中的 6 位数字验证码。",
    err_code_wrong: "验证码不正确，还可尝试 {} 次。",
    err_code_dead: "验证码已失效，请重新获取。",
    err_code_last_wrong: "验证码不正确，且已没有剩余次数：验证码已失效，请重新获取。",
    err_no_code: "请先获取验证码。",
    err_phone_taken: "该手机号已绑定其他微信账号。",
    err_wechat_taken: "该微信已绑定其他手机号，请重新扫码登录。",
    err_sms_failed: "验证码发送失败，请稍后再试。如果仍收到了短信，可以直接输入其中的验证码。",
    err_form_expired: "页面已过期，请重新提交。",
    err_sms_limit_phone: "该手机号获取验证码次数过多，请在北京时间 {} 后再试（约 {}后）。",
    err_sms_limit_ip: "当前网络获取验证码次数过多，请在北京时间 {} 后再试（约 {}后）。",
    sms_limit_tomorrow: "明天 {}",
    sms_limit_minutes: "{} 分钟",
    sms_limit_hours: "{} 小时 {} 分钟",

    reply_logged_in: "登录成功，请回到网页继续。",
    reply_needs_bind: "扫码成功！首次登录，请在网页上绑定手机号完成登录。",
    reply_disabled: "该账号已被停用，无法登录。如有疑问请联系网站管理员。",
    reply_expired: "二维码已过期，请刷新网页后重新扫码。",
    reply_used: "这个二维码已经使用过了，请刷新网页获取新的二维码。",
    reply_where: "（登录的网页来自 IP {}，北京时间 {}；其浏览器自称：{}。不是你本人在登录？请不要扫码。）",
    unknown_browser: "未知",
    reply_welcome: "感谢关注！在网站上点击“微信扫码登录”即可登录。",
    reply_help: "要登录网站，请在网页上打开登录二维码并用微信扫码。",

    sandbox_title: "模拟微信",
    sandbox_intro: "这是沙盒里的一部“手机”：选择或编一个微信用户，然后扫码。wxlogin 会收到与真实微信相同的签名回调。",
    sandbox_pick: "以这个用户扫码",
    sandbox_new_user: "或者新建一个微信用户（openid）",
    sandbox_scan: "扫一扫",
    sandbox_account: "公众号",
    sandbox_you_scanned: "你扫描了登录二维码",
    sandbox_no_reply: "（公众号没有回复）",
    sandbox_bad_ticket: "这个二维码无效或已过期。",
    sandbox_bad_openid: "openid 只能包含 1 到 64 个字母、数字、- 或 _。",
    sandbox_callback_failed: "回调没有成功：{}",
    sandbox_inbox_title: "沙盒短信收件箱",
    sandbox_inbox_empty: "还没有短信。",

    error_title: "出错了",
    error_not_found: "页面不存在。",
    error_forbidden: "您无权访问此页面。",
    error_bad_request: "请求无效。",
    error_internal: "服务器出错了，请稍后再试。",
    error_too_many: "来自你所在网络的请求太多了，请在 {} 分钟后再试。",
    error_unavailable: "微信服务暂时不可用，请稍后再试。",
    back_home: "返回首页",

    admin_title: "管理后台",
    admin_nav_dashboard: "概览",
    admin_nav_users: "用户",
    admin_nav_home: "返回网站",
    admin_total_users: "用户总数",
    admin_total_following: "关注公众号",
    admin_total_disabled: "已停用",
    admin_chart_title: "最近 30 天",
    admin_chart_label: "最近 30 天每天的新绑定数和登录次数",
    admin_chart_bindings: "新绑定",
    admin_chart_logins: "登录",
    admin_latest_logins: "最新扫码",
    admin_latest_live: "新的扫码会自动出现在这里。",
    admin_no_logins: "还没有扫码记录。",
    admin_times_note: "时间均为北京时间（UTC+8）。",
    admin_search_label: "搜索",
    admin_search_placeholder: "手机号（任意部分）、openid 或 unionid",
    admin_sort_label: "排序",
    admin_sort_bound: "绑定时间（新→旧）",
    admin_sort_last_login: "最近登录（新→旧）",
    admin_any: "全部",
    admin_yes: "是",
    admin_no: "否",
    admin_apply: "筛选",
    admin_clear: "清除条件",
    admin_export_csv: "导出 CSV",
    admin_next_page: "下一页",
    admin_first_page: "第一页",
    admin_no_users: "没有符合条件的用户。",
    admin_never: "从未",
    admin_col_id: "ID",
    admin_col_phone: "手机号",
    admin_col_openid: "openid",
    admin_col_unionid: "unionid",
    admin_col_following: "关注",
    admin_col_admin: "管理员",
    admin_col_disabled: "已停用",
    admin_col_created_at: "创建时间",
    admin_col_bound_at: "绑定时间",
    admin_col_last_login: "最近登录",
    admin_col_time: "时间",
    admin_col_ip: "IP",
    admin_col_user_agent: "浏览器",
    admin_col_outcome: "结果",
    admin_col_actor: "操作人",
    admin_col_action: "操作",
    admin_col_detail: "详情",
    admin_user_title: "用户 #{}",
    admin_back_to_users: "返回用户列表",
    admin_not_bound: "未绑定微信",
    admin_login_history: "登录记录",
    admin_no_history: "没有登录记录。",
    admin_older: "更早的记录",
    admin_outcome_logged_in: "登录成功",
    admin_outcome_needs_bind: "需要绑定手机号",
    admin_outcome_disabled: "已停用，拒绝登录",
    admin_audit_title: "操作记录",
    admin_no_audit: "没有操作记录。",
    admin_actor_cli: "命令行",
    admin_actions_title: "管理操作",
    admin_action_disable: "停用账号",
    admin_action_enable: "启用账号",
    admin_action_unbind: "解绑微信",
    admin_action_grant: "设为管理员",
    admin_action_revoke: "取消管理员",
    admin_self_note: "这是您自己的账号：不能对自己执行管理操作。",
    admin_err_self: "不能对自己的账号执行此操作。",
    admin_nav_clients: "网站",
    admin_clients_intro: "通过 OpenID Connect 使用本服务登录的网站。新网站用命令 wxlogin client add 注册，密钥只在注册时显示一次。",
    admin_no_clients: "还没有注册网站。",
    admin_col_client_id: "client_id",
    admin_col_client_name: "名称",
    admin_col_client_kind: "类型",
    admin_client_public: "公开（PKCE）",
    admin_client_confidential: "机密（密钥）",
    admin_redirect_uris: "回调地址（每行一个）",
    admin_post_logout_uris: "退出后返回地址（每行一个）",
    admin_save: "保存",
    admin_remove_client: "删除该网站",
    admin_client_title: "网站 {}",
    admin_back_to_clients: "← 所有网站",
    admin_err_client_name: "名称需为 1 到 100 个字符。",
    admin_err_no_redirect: "至少需要一个回调地址。",
    admin_err_query: "链接中的参数无效：{}",
    phone_title: "在手机上？",
    phone_save_steps: "保存二维码图片，然后打开微信，点「扫一扫」，再点右上角的相册，选择这张图片。",
    save_qr: "保存二维码图片",
    open_in_wechat: "也可以在微信中打开本页：把这个链接发给自己，在微信聊天里点开：",
    other_ways: "其他登录方式",
    sms_login_link: "用短信验证码登录",
    use_qr_instead: "改用二维码登录",
    wechat_title: "微信登录",
    wechat_cancelled: "微信授权没有完成（已取消或被拒绝）。您可以再试一次，或改用二维码登录。",
    wechat_try_again: "重新授权",
    wechat_link_dead: "这个登录链接已失效（已过期或已使用）。请重新开始登录。",
    wechat_code_bad: "微信的授权码无效或已被使用。请重新授权。",
    wechat_snapshot: "当前页面是朋友圈快照页，无法登录。请点击页面底部的「使用完整服务」，然后再试。",
    follow_title: "关注公众号",
    follow_hint: "长按识别下方二维码关注公众号，以后扫码登录更方便，也能收到登录提醒。",
    follow_qr_alt: "公众号二维码",
    sms_login_title: "短信验证码登录",
    sms_login_hint: "已绑定手机号的用户，可以用发到该手机的验证码登录。",
    sms_login_hint_open: "输入手机号，用发到该手机的验证码登录。新号码会创建账号，以后扫码即可关联微信。",
    sms_login_sent: "如果该号码可以登录，验证码已发送至 {}，5 分钟内有效。",
    method_scan: "扫码",
    method_wechat_oauth: "微信内授权",
    method_sms: "短信验证码",
    admin_col_method: "方式",
    sandbox_oauth_title: "沙盒 · 微信内网页授权",
    sandbox_oauth_intro: "这是微信内置浏览器的模拟：真实的微信会静默完成授权并直接跳回。请选择这个浏览器属于哪位模拟微信用户。",
    sandbox_oauth_recent: "最近的模拟用户",
    sandbox_oauth_as: "以这个用户继续",
    sandbox_oauth_snapshot: "朋友圈快照页用户（虚拟用户）",
    sandbox_oauth_deny: "取消授权",
    sandbox_oauth_bad_appid: "参数错误：appid 不是这个公众号的。",
    sandbox_oauth_bad_redirect: "redirect_uri 域名与后台配置不一致（10003）。",
    sandbox_oauth_bad_scope: "scope 参数错误或没有 scope 权限（10005）。",
    qr_scanned: "扫码成功",
    qr_dead: "二维码已失效",
    qr_tap_to_refresh: "点击刷新",
    disabled_contact: "如有疑问，请联系 {}。",
    disabled_contact_admin: "如有疑问，请联系网站管理员。",
    login_with_other_wechat: "用其他微信扫码登录",
    privacy_link: "隐私政策",
    terms_link: "用户协议",
    login_hint_account: "请用微信扫描二维码，关注「{}」后即可登录。",
};

/// English.
pub static EN: Text = Text {
    site_name: "Log in with WeChat",
    home_title: "Home",
    logged_in_as: "Logged in as {}",
    logout: "Log out",
    logout_everywhere: "Log out on every device",
    anonymous: "You are not logged in.",
    login_link: "Log in with WeChat",

    login_title: "Log in with WeChat",
    login_hint: "Scan the QR code with WeChat and follow the account to log in.",
    login_for_site: "You are logging in to {}.",
    oidc_error_title: "Can't log in to this site",
    qr_alt: "Login QR code",
    expires_in: "QR code expires in",
    sandbox_link: "open the simulated WeChat",
    sandbox_note: "Sandbox mode: there is no real WeChat here; scan this QR code with the simulated one.",
    noscript_hint: "This page refreshes itself every 3 seconds.",
    status_waiting: "Waiting for a scan…",
    status_authorized: "Scanned. Logging you in…",
    status_needs_bind: "Scanned. First time here: link your phone number…",
    status_rejected: "This account is disabled and cannot log in.",
    status_expired: "The QR code has expired.",
    new_qr: "Get a new QR code",
    continue_link: "Continue",
    qr_unavailable: "Could not create a QR code. Please try again in a moment.",

    bind_title: "Bind your phone number",
    bind_hint: "First login with this WeChat: bind a phone number, and from then on a scan logs you in.",
    phone_label: "Mobile number",
    phone_placeholder: "138 0013 8000",
    send_code: "Send code",
    resend_code: "Send again",
    code_label: "Code from the SMS",
    verify: "Bind and log in",
    code_sent: "We sent a code to {}. It is valid for 5 minutes.",
    resend_wait: "You can ask for a new code in {} s",
    change_phone: "Use another number",
    err_phone: "Enter a mainland China mobile number, e.g. 138 0013 8000.",
    err_code_format: "Enter the 6-digit code from the SMS.",
    err_code_wrong: "Wrong code. {} tries left.",
    err_code_dead: "This code is no longer valid. Ask for a new one.",
    err_code_last_wrong: "Wrong code, and that was the last try: this code is no longer valid. Ask for a new one.",
    err_no_code: "Ask for a code first.",
    err_phone_taken: "This number belongs to another WeChat account.",
    err_wechat_taken: "This WeChat is already bound to another number. Please scan again to log in.",
    err_sms_failed: "Could not send the code. Please try again in a moment; if a code still arrives, you can enter it.",
    err_form_expired: "This form has expired. Please submit it again.",
    err_sms_limit_phone: "Too many codes were sent to this number. Try again after {} (China time), in about {}.",
    err_sms_limit_ip: "Too many codes were requested from this network. Try again after {} (China time), in about {}.",
    sms_limit_tomorrow: "{} tomorrow",
    sms_limit_minutes: "{} min",
    sms_limit_hours: "{} h {} min",

    reply_logged_in: "You are logged in. Go back to the web page to continue.",
    reply_needs_bind: "Scanned! First login: bind your phone number on the web page to finish.",
    reply_disabled: "This account is disabled and cannot log in. Contact the site's administrators.",
    reply_expired: "This QR code has expired. Reload the web page and scan again.",
    reply_used: "This QR code has already been used. Reload the web page for a new one.",
    reply_where: "(The web page is at IP {}, {} Beijing time; its browser says it is: {}. Not you logging in? Don't scan codes others show you.)",
    unknown_browser: "unknown",
    reply_welcome: "Thanks for following! Choose \"Log in with WeChat\" on the website to log in.",
    reply_help: "To log in, open the login QR code on the website and scan it with WeChat.",

    sandbox_title: "Simulated WeChat",
    sandbox_intro: "This is a phone inside the sandbox: pick or make up a WeChat user, then scan. wxlogin gets the same signed callback real WeChat would send.",
    sandbox_pick: "Scan as this user",
    sandbox_new_user: "Or make up a new WeChat user (openid)",
    sandbox_scan: "Scan",
    sandbox_account: "Official Account",
    sandbox_you_scanned: "You scanned the login QR code",
    sandbox_no_reply: "(the account did not reply)",
    sandbox_bad_ticket: "This QR code is not valid or has expired.",
    sandbox_bad_openid: "An openid is 1 to 64 letters, digits, - or _.",
    sandbox_callback_failed: "The callback did not succeed: {}",
    sandbox_inbox_title: "Sandbox SMS inbox",
    sandbox_inbox_empty: "No messages yet.",

    error_title: "Something went wrong",
    error_not_found: "There is no such page.",
    error_forbidden: "You may not open this page.",
    error_bad_request: "This request is not valid.",
    error_internal: "Something went wrong on our side. Please try again later.",
    error_too_many: "Too many requests from your network. Please try again in {} minutes.",
    error_unavailable: "WeChat is not answering right now. Please try again in a moment.",
    back_home: "Back to the home page",

    admin_title: "Administration",
    admin_nav_dashboard: "Dashboard",
    admin_nav_users: "Users",
    admin_nav_home: "Back to the site",
    admin_total_users: "Users",
    admin_total_following: "Following",
    admin_total_disabled: "Disabled",
    admin_chart_title: "Last 30 days",
    admin_chart_label: "New bindings and logins per day over the last 30 days",
    admin_chart_bindings: "New bindings",
    admin_chart_logins: "Logins",
    admin_latest_logins: "Latest scans",
    admin_latest_live: "New scans appear here as they happen.",
    admin_no_logins: "No scans yet.",
    admin_times_note: "Times are China Standard Time (UTC+8).",
    admin_search_label: "Search",
    admin_search_placeholder: "Phone (any part), openid or unionid",
    admin_sort_label: "Sort by",
    admin_sort_bound: "Bound at (newest first)",
    admin_sort_last_login: "Last login (newest first)",
    admin_any: "Any",
    admin_yes: "Yes",
    admin_no: "No",
    admin_apply: "Apply",
    admin_clear: "Clear",
    admin_export_csv: "Export CSV",
    admin_next_page: "Next page",
    admin_first_page: "First page",
    admin_no_users: "No users match.",
    admin_never: "never",
    admin_col_id: "ID",
    admin_col_phone: "Phone",
    admin_col_openid: "openid",
    admin_col_unionid: "unionid",
    admin_col_following: "Following",
    admin_col_admin: "Admin",
    admin_col_disabled: "Disabled",
    admin_col_created_at: "Created at",
    admin_col_bound_at: "Bound at",
    admin_col_last_login: "Last login",
    admin_col_time: "Time",
    admin_col_ip: "IP",
    admin_col_user_agent: "User agent",
    admin_col_outcome: "Outcome",
    admin_col_actor: "By",
    admin_col_action: "Action",
    admin_col_detail: "Detail",
    admin_user_title: "User #{}",
    admin_back_to_users: "Back to the users",
    admin_not_bound: "WeChat not bound",
    admin_login_history: "Login history",
    admin_no_history: "No logins recorded.",
    admin_older: "Older entries",
    admin_outcome_logged_in: "Logged in",
    admin_outcome_needs_bind: "Needed binding",
    admin_outcome_disabled: "Refused: disabled",
    admin_audit_title: "Audit log",
    admin_no_audit: "No actions recorded.",
    admin_actor_cli: "command line",
    admin_actions_title: "Actions",
    admin_action_disable: "Disable",
    admin_action_enable: "Enable",
    admin_action_unbind: "Unbind WeChat",
    admin_action_grant: "Make administrator",
    admin_action_revoke: "Remove administrator",
    admin_self_note: "This is your own account: you cannot act on it here.",
    admin_err_self: "You cannot do this to your own account.",
    admin_nav_clients: "Sites",
    admin_clients_intro: "Sites that log their users in through this service with OpenID Connect. Register a new one with wxlogin client add; its secret is shown once, then.",
    admin_no_clients: "No site is registered yet.",
    admin_col_client_id: "client_id",
    admin_col_client_name: "Name",
    admin_col_client_kind: "Kind",
    admin_client_public: "Public (PKCE)",
    admin_client_confidential: "Confidential (secret)",
    admin_redirect_uris: "Redirect URIs (one per line)",
    admin_post_logout_uris: "Post-logout redirect URIs (one per line)",
    admin_save: "Save",
    admin_remove_client: "Remove this site",
    admin_client_title: "Site {}",
    admin_back_to_clients: "← All sites",
    admin_err_client_name: "The name must be 1 to 100 characters.",
    admin_err_no_redirect: "At least one redirect URI is needed.",
    admin_err_query: "The address has an invalid parameter: {}",
    phone_title: "On a phone?",
    phone_save_steps: "Save the QR image, then open WeChat, tap Scan, tap the album icon at the top right and pick the image.",
    save_qr: "Save QR image",
    open_in_wechat: "Or open this page in WeChat: send yourself this link and tap it in a WeChat chat:",
    other_ways: "Other ways to log in",
    sms_login_link: "Log in with an SMS code",
    use_qr_instead: "Use the QR code instead",
    wechat_title: "Log in with WeChat",
    wechat_cancelled: "The WeChat authorization didn't finish (it was cancelled or declined). Try again, or use the QR code.",
    wechat_try_again: "Try again",
    wechat_link_dead: "This login link is no longer valid (it expired or was already used). Please start again.",
    wechat_code_bad: "WeChat's authorization code was invalid or already used. Please try again.",
    wechat_snapshot: "This is a Moments snapshot page, where nobody can log in. Tap “Use full service” at the bottom of the page, then try again.",
    follow_title: "Follow our Official Account",
    follow_hint: "Long-press the QR code below to follow us: scanning to log in gets easier, and you get a notice at every login.",
    follow_qr_alt: "The Official Account's QR code",
    sms_login_title: "Log in with an SMS code",
    sms_login_hint: "If your phone number is linked to an account, log in with a code sent to it.",
    sms_login_hint_open: "Enter your phone number and log in with a code sent to it. A new number makes an account; scan with WeChat later to link it.",
    sms_login_sent: "If this number can log in, a code has been sent to {}. It is valid for 5 minutes.",
    method_scan: "QR scan",
    method_wechat_oauth: "In WeChat",
    method_sms: "SMS code",
    admin_col_method: "Method",
    sandbox_oauth_title: "Sandbox · WeChat web authorization",
    sandbox_oauth_intro: "This stands in for WeChat's own browser: the real WeChat authorizes silently and goes straight back. Pick which simulated WeChat user this browser belongs to.",
    sandbox_oauth_recent: "Recent simulated users",
    sandbox_oauth_as: "Continue as this user",
    sandbox_oauth_snapshot: "A Moments snapshot page's user (virtual)",
    sandbox_oauth_deny: "Cancel the authorization",
    sandbox_oauth_bad_appid: "Parameter error: appid is not this Official Account's.",
    sandbox_oauth_bad_redirect: "redirect_uri's domain is not the one configured for web authorization (10003).",
    sandbox_oauth_bad_scope: "scope is wrong, or the account lacks its permission (10005).",
    qr_scanned: "Scanned",
    qr_dead: "QR code expired",
    qr_tap_to_refresh: "Tap to refresh",
    disabled_contact: "If you think this is a mistake, contact {}.",
    disabled_contact_admin: "If you think this is a mistake, contact the site's administrator.",
    login_with_other_wechat: "Log in with another WeChat",
    privacy_link: "Privacy policy",
    terms_link: "Terms of service",
    login_hint_account: "Scan the QR code with WeChat and follow {} to log in.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_unless_english_is_preferred() {
        assert_eq!(Lang::from_accept_language(""), Lang::Zh);
        assert_eq!(Lang::from_accept_language("fr-FR,de;q=0.8"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::Zh
        );
        assert_eq!(
            Lang::from_accept_language("fr;q=1,en;q=0.5,zh;q=0.4"),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language("en;q=0,zh-TW"), Lang::Zh);
    }

    #[test]
    fn fill_replaces_placeholders_in_order() {
        assert_eq!(fill("{} of {}", &[&1, &"two"]), "1 of two");
        assert_eq!(fill("no args", &[]), "no args");
    }
}
