// wxlogin's only script: the live login page (server-sent events), the QR countdown, the SMS
// resend cooldown and submitting the code once six digits are typed. Every page works without
// it; this only saves the waiting. The server renders every HTML fragment it pushes.

const byId = (id) => document.getElementById(id);

// Only ever follow a redirect to a path on this site.
const isLocalPath = (url) => url.startsWith('/') && !url.startsWith('//') && !url.includes('\\');

let countdownTimer;

// A live code's countdown; it turns urgent in the last `data-urgent` seconds. A dead code
// has none (the server pushes the dead code when its time is up).
function startCountdown() {
  const el = byId('countdown');
  clearInterval(countdownTimer);
  if (!el) return;
  const deadline = Date.now() + Number(el.dataset.remaining || 0) * 1000;
  const urgent = Number(el.dataset.urgent || 30);
  const tick = () => {
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    el.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
    el.parentElement?.classList.toggle('urgent', left <= urgent);
    if (left === 0) clearInterval(countdownTimer);
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
}

function watchLogin() {
  const block = byId('qr-block');
  if (!block || !window.EventSource) return;
  const source = new EventSource('/login/events');
  source.addEventListener('status', (e) => {
    byId('status').innerHTML = e.data;
  });
  source.addEventListener('qr', (e) => {
    block.innerHTML = e.data;
    // The sandbox's SMS inbox shows new codes without a reload by hand.
function refreshInbox() {
  const inbox = document.querySelector('#inbox[data-refresh]');
  if (inbox) setTimeout(() => window.location.reload(), Number(inbox.dataset.refresh) * 1000);
}

startCountdown();
refreshInbox();
  });
  // The scanned code and "logging in" stay on screen a moment before the page moves on.
  source.addEventListener('redirect', (e) => {
    source.close();
    if (isLocalPath(e.data)) setTimeout(() => window.location.assign(e.data), 600);
  });
  source.addEventListener('idle', (e) => {
    source.close();
    byId('status').innerHTML = e.data;
  });
}

function resendCooldown() {
  const button = byId('resend');
  if (!button) return;
  // The page's "you can ask again after hh:mm:ss" is for browsers without this script.
  byId('resend-when')?.remove();
  let wait = Number(button.dataset.wait || 0);
  const label = () => {
    if (wait > 0) {
      button.disabled = true;
      button.textContent = button.dataset.waitLabel.replace('{}', String(wait));
    } else {
      button.disabled = false;
      button.textContent = button.dataset.label;
    }
  };
  label();
  if (wait <= 0) return;
  const timer = setInterval(() => {
    wait -= 1;
    label();
    if (wait <= 0) clearInterval(timer);
  }, 1000);
}

function autoSubmitCode() {
  const input = byId('code');
  if (!input) return;
  input.addEventListener('input', () => {
    if (/^\d{6}$/.test(input.value) && input.form) input.form.requestSubmit();
  });
}

// The admin dashboard's latest scans: each `event: login` carries a server-rendered <li>,
// newest first. The list says which event it was drawn with, so none falls in between; on a
// reconnect EventSource sends Last-Event-ID and the server resumes from there.
function watchLatestLogins() {
  const list = document.querySelector('#latest-logins[data-live]');
  if (!list || !window.EventSource) return;
  const max = Number(list.dataset.max || 20);
  const source = new EventSource(`/admin/events?after=${encodeURIComponent(list.dataset.lastId || '0')}`);
  source.addEventListener('login', (e) => {
    list.insertAdjacentHTML('afterbegin', e.data);
    while (list.children.length > max) list.lastElementChild.remove();
    byId('no-logins')?.remove();
  });
}

startCountdown();
watchLogin();
resendCooldown();
autoSubmitCode();
watchLatestLogins();
