// The recipient's delivery page: reads /d/<token>/details, asks for the PIN when there is one,
// shows the photos and one download per variant (all photos, or the ticked ones).

const token = decodeURIComponent(window.location.pathname.split("/")[2] || "");
const base = `/d/${encodeURIComponent(token)}`;
const $ = (id) => document.getElementById(id);

function say(text) {
  $("status").textContent = text;
  $("status").hidden = !text;
}

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return { code: body.error, text: typeof body.detail === "string" ? body.detail : "" };
  } catch {
    return { code: "", text: "" };
  }
}

async function load() {
  const response = await fetch(`${base}/details`, { credentials: "same-origin" });
  if (response.status === 401) {
    say("");
    $("pin-form").hidden = false;
    $("pin").focus();
    return;
  }
  if (!response.ok) {
    const { text } = await errorOf(response);
    say(text || "This delivery cannot be shown right now. Try again shortly.");
    return;
  }
  render(await response.json());
}

function downloadButtons(page) {
  const box = $("downloads");
  box.replaceChildren();
  const ticked = [...document.querySelectorAll("#grid input:checked")].map((i) => i.value);
  for (const variant of page.variants) {
    const count = ticked.length || variant.images;
    const size = !ticked.length && variant.bytes ? `, ${megabytes(variant.bytes)}` : "";
    const what = ticked.length ? `Download ${count} selected` : "Download all";
    const text = `${what} — ${variant.label} (${count} photo${count === 1 ? "" : "s"}${size})`;
    if (page.state !== "ready") {
      const span = document.createElement("span");
      span.textContent = text;
      span.setAttribute("aria-disabled", "true");
      box.append(span);
      continue;
    }
    const link = document.createElement("a");
    link.textContent = text;
    link.href = ticked.length
      ? `${variant.url}&images=${ticked.map(encodeURIComponent).join(",")}`
      : variant.url;
    link.setAttribute("download", "");
    box.append(link);
  }
}

function render(page) {
  say("");
  document.title = page.order_name ? `${page.order_name} — photos` : "Your photos";
  $("title").textContent = page.order_name || "Your photos";
  if (page.photographer) {
    $("photographer").textContent = `From ${page.photographer}`;
    $("photographer").hidden = false;
  }
  $("recipient").textContent = `For ${page.recipient}`;
  $("recipient").hidden = false;
  if (page.message) {
    $("message").textContent = page.message;
    $("message").hidden = false;
  }
  const notices = {
    locked: "These are previews. The full photos are released once the photographer unlocks them.",
    limit_reached: "All downloads this link allows were used. Ask the photographer for another.",
  };
  $("notice").textContent = notices[page.state] || "";
  $("notice").hidden = !notices[page.state];
  const grid = $("grid");
  grid.replaceChildren();
  for (const image of page.images) {
    const item = document.createElement("li");
    const photo = document.createElement("button");
    photo.type = "button";
    photo.className = "photo";
    photo.setAttribute("aria-label", `View ${image.name || "photo"} larger`);
    const picture = document.createElement("img");
    picture.loading = "lazy";
    picture.alt = image.name || "";
    if (image.ready) picture.src = image.preview_url;
    photo.append(picture);
    photo.addEventListener("click", () => view(image));
    const label = document.createElement("label");
    const tick = document.createElement("input");
    tick.type = "checkbox";
    tick.value = image.image_id;
    tick.addEventListener("change", () => downloadButtons(page));
    label.append(tick, " Take");
    const name = document.createElement("p");
    name.className = "name";
    name.textContent = image.name || image.image_id;
    item.append(photo, label, name);
    grid.append(item);
  }
  downloadButtons(page);
  $("content").hidden = false;
}

function view(image) {
  $("viewer-image").src = image.large_url;
  $("viewer-image").alt = image.name || "";
  $("viewer-name").textContent = image.name || "";
  $("viewer").showModal();
}

$("pin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch(`${base}/pin`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ pin: $("pin").value }),
  });
  if (response.ok) {
    $("pin-form").hidden = true;
    say("Loading…");
    await load();
    return;
  }
  const { text } = await errorOf(response);
  $("pin-error").textContent = text || "That did not work; try again.";
  $("pin-error").hidden = false;
});

load()
  .catch(() => say("This delivery cannot be shown right now. Try again shortly."))
  .finally(() => {
    document.body.dataset.ready = "true";
  });
