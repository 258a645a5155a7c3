// Naba's page: calls the same API as any client (/v1/model, /v1/analyze, /v1/analyze/batch, /v1/feedback).
// Nothing the analyst typed is cleared on an error; the API key lives in memory (sessionStorage only when asked).
"use strict";

const STRINGS = {
  ar: {
    tagline: "وسوم الأخبار العربية وأدلتها وملخصاتها", keyPrompt: "تطلب الخدمة مفتاح API:",
    keyRemember: "تذكّر المفتاح في هذا التبويب", keySubmit: "استخدام المفتاح", tabSingle: "مقال واحد",
    tabBatch: "ملف مقالات", title: "العنوان (اختياري)", text: "نص المقال", summaryBy: "طول الملخص",
    bySentences: "عدد الجمل", byRatio: "نسبة من المقال", operatingPoint: "نقطة التشغيل", balanced: "متوازنة",
    precision: "الدقة", recall: "الاستدعاء", analyze: "حلّل", labels: "الوسوم", summary: "الملخص",
    article: "المقال",
    articleHint: "الجمل الملوّنة أدلة الوسوم، والمسطّرة جمل الملخص. مرّر فوق وسم أو انقر عليه لترى أدلته وحده.",
    correct: "تصحيح النتيجة",
    correctHint: "اختر الوسوم الصحيحة، ثم اختر جملة الدليل لوسم بالنقر على «اختيار الدليل» ثم على جملة في المقال.",
    sendCorrection: "إرسال التصحيح", referenceSummary: "ملخص مرجعي (اختياري)", batchFile: "ملف JSONL أو CSV (مثل مدخلات naba predict)",
    batchRun: "حلّل الملف", badLines: "أسطر لم تُحلَّل", results: "النتائج", filter: "تصفية حسب الوسم",
    all: "الكل", downloadJsonl: "تنزيل JSONL", downloadCsv: "تنزيل CSV", id: "المعرّف",
    pick: "اختيار الدليل", picking: "انقر على جملة في المقال…", noEvidence: "بلا دليل",
    threshold: "العتبة", saved: "حُفظ التصحيح رقم {id}. شكراً.", line: "السطر {n}: {why}",
    progress: "{done} من {total}", none: "لا وسم",
    err401: "المفتاح مفقود أو غير صحيح. أدخل مفتاح API ثم أعد المحاولة.",
    err413: "النص أطول مما تقبله الخدمة: {detail}",
    err422: "لا يمكن تحليل هذا الإدخال: {detail}",
    err503: "الخدمة مشغولة أو ما زالت تحمّل النموذج. أعد المحاولة بعد {after} ثانية.",
    err504: "انتهت مهلة الطلب؛ الخدمة مثقلة. أعد المحاولة بعد قليل.",
    errOther: "حدث خطأ ({status}): {detail}", errNetwork: "تعذّر الوصول إلى الخدمة. تحقّق من الاتصال.",
    errFile: "لا يمكن قراءة الملف: {detail}", noText: "لا يوجد حقل text", badJson: "ليس JSON صالحاً",
    labelNames: {coordination_centre: "مركز تنسيق", joint_operation: "عملية مشتركة", attack: "هجوم"},
  },
  en: {
    tagline: "Arabic news topics, their evidence and summaries", keyPrompt: "This service needs an API key:",
    keyRemember: "Remember the key in this tab", keySubmit: "Use key", tabSingle: "One article",
    tabBatch: "A file of articles", title: "Title (optional)", text: "Article text", summaryBy: "Summary length",
    bySentences: "sentences", byRatio: "share of the article", operatingPoint: "Operating point",
    balanced: "balanced", precision: "precision", recall: "recall", analyze: "Analyse", labels: "Labels",
    summary: "Summary", article: "Article",
    articleHint: "Coloured sentences are evidence for a label, underlined ones are in the summary. Hover or " +
      "click a label to see its evidence alone.",
    correct: "Correct this result",
    correctHint: "Tick the right labels; to choose a label's evidence, click “Pick evidence”, then a sentence.",
    sendCorrection: "Send correction", referenceSummary: "Reference summary (optional)", batchFile: "A JSONL or CSV file (the naba predict formats)",
    batchRun: "Analyse the file", badLines: "Lines not analysed", results: "Results", filter: "Filter by label",
    all: "all", downloadJsonl: "Download JSONL", downloadCsv: "Download CSV", id: "id",
    pick: "Pick evidence", picking: "click a sentence in the article…", noEvidence: "no evidence",
    threshold: "threshold", saved: "Correction {id} saved. Thank you.", line: "line {n}: {why}",
    progress: "{done} of {total}", none: "no label",
    err401: "The API key is missing or wrong. Enter a key and try again.",
    err413: "The input is longer than the service accepts: {detail}",
    err422: "This input cannot be analysed: {detail}",
    err503: "The service is busy or still loading its model. Try again in {after} s.",
    err504: "The request timed out; the service is overloaded. Try again shortly.",
    errOther: "Something went wrong ({status}): {detail}", errNetwork: "The service cannot be reached.",
    errFile: "The file cannot be read: {detail}", noText: "no text field", badJson: "not valid JSON",
    labelNames: {},
  },
};

const state = {lang: "ar", key: sessionStorage.getItem("naba-key"), model: null, analysis: null,
               article: null, picking: null, evidence: {}, batch: []};
const $ = (id) => document.getElementById(id);

function t(name, values = {}) {
  return STRINGS[state.lang][name].replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? ""));
}

function labelName(label) {
  return STRINGS[state.lang].labelNames[label] || label;
}

function setLanguage(lang) {
  state.lang = lang;
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === "ar" ? "rtl" : "ltr";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  $("lang-toggle").textContent = lang === "ar" ? "English" : "العربية";
  $("lang-toggle").lang = lang === "ar" ? "en" : "ar";
  if (state.analysis) renderAnalysis();
}

function showMessage(text, ok = false) {
  const box = $("message");
  box.textContent = text;
  box.className = ok ? "ok" : "";
  box.hidden = !text;
}

class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

function explain(error) {
  if (!(error instanceof ApiError)) return t("errNetwork");
  const values = {status: error.status, detail: error.detail, after: error.retryAfter || 1};
  const known = {401: "err401", 413: "err413", 422: "err422", 503: "err503", 504: "err504"};
  return t(known[error.status] || "errOther", values);
}

async function api(path, body) {
  const headers = {"Content-Type": "application/json"};
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  let response;
  try {
    response = await fetch(path, body === undefined ? {headers} : {method: "POST", headers, body: JSON.stringify(body)});
  } catch (error) {
    throw new ApiError(0, String(error));
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) $("key-panel").hidden = false;
    throw new ApiError(response.status, data.error || response.statusText, response.headers.get("Retry-After"));
  }
  return data;
}

async function loadModel() {
  try {
    state.model = await api("/v1/model");
    $("model-name").textContent = `${state.model.name} ${state.model.version}`;
    showMessage("");
  } catch (error) {
    showMessage(explain(error));
    if (error.status === 503) setTimeout(loadModel, 1000 * (Number(error.retryAfter) || 2));
  }
}

// --- one article -------------------------------------------------------------------------------------------

function requestOptions() {
  const value = Number($("summary-value").value);
  const options = {operating_point: $("operating-point").value};
  if ($("summary-mode").value === "ratio") options.summary_ratio = value;
  else options.summary_sentences = value;
  return options;
}

async function analyze(event) {
  event?.preventDefault();
  const article = {text: $("text").value, title: $("title").value || null};
  const button = $("analyze");
  button.disabled = true;
  try {
    if (!state.model) await loadModel();
    state.analysis = await api("/v1/analyze", {...article, ...requestOptions(), include_sentences: true});
    state.article = article;
    state.evidence = {};
    state.picking = null;
    showMessage("");
    renderAnalysis();
  } catch (error) {
    showMessage(explain(error));
  } finally {
    button.disabled = false;
  }
}

function labelColour(label) {
  const index = state.model ? state.model.labels.indexOf(label) : 0;
  return `var(--label-${Math.max(index, 0) % 5})`;
}

function renderAnalysis() {
  const analysis = state.analysis;
  const point = $("operating-point").value;
  const thresholds = state.model?.operating_points?.[point] || {};
  const tagged = new Map(analysis.labels.map((l) => [l.label, l]));
  const bars = $("label-bars");
  bars.replaceChildren();
  for (const label of Object.keys(analysis.scores)) {
    const score = analysis.scores[label];
    const li = document.createElement("li");
    li.dataset.label = label;
    li.style.setProperty("--label-colour", labelColour(label));
    li.classList.toggle("tagged", tagged.has(label));
    li.title = `${t("threshold")} ${(thresholds[label] ?? 0).toFixed(2)}`;
    li.innerHTML = '<span class="chip"></span><span class="bar"><span class="fill"></span>' +
      '<span class="threshold"></span></span><span class="score"></span>';
    li.querySelector(".chip").textContent = labelName(label);
    li.querySelector(".fill").style.width = `${(score * 100).toFixed(1)}%`;
    li.querySelector(".threshold").style.insetInlineStart = `${((thresholds[label] ?? 0) * 100).toFixed(1)}%`;
    li.querySelector(".score").textContent = score.toFixed(2);
    li.addEventListener("mouseenter", () => highlight(label));
    li.addEventListener("mouseleave", () => highlight(bars.dataset.focus || null));
    li.addEventListener("click", () => {
      bars.dataset.focus = bars.dataset.focus === label ? "" : label;
      for (const other of bars.children) other.classList.toggle("focused", other.dataset.label === bars.dataset.focus);
      highlight(bars.dataset.focus || null);
    });
    bars.append(li);
  }
  $("summary").textContent = analysis.summary;
  const articleBox = $("article");
  articleBox.replaceChildren();
  const inSummary = new Set(analysis.summary_indices);
  (analysis.sentences || []).forEach((sentence, index) => {
    const span = document.createElement("span");
    span.className = "sentence";
    span.dataset.index = String(index);
    span.classList.toggle("in-summary", inSummary.has(index));
    span.dataset.labels = analysis.labels.filter((l) => l.evidence.includes(sentence)).map((l) => l.label).join(" ");
    span.textContent = sentence;
    span.addEventListener("click", () => pickEvidence(sentence));
    articleBox.append(span, " ");
  });
  highlight(bars.dataset.focus || null);
  renderCorrections();
  $("result").hidden = false;
}

function highlight(only) {
  for (const span of $("article").querySelectorAll(".sentence")) {
    const labels = span.dataset.labels ? span.dataset.labels.split(" ") : [];
    const shown = only ? labels.filter((l) => l === only) : labels;
    span.classList.toggle("evidence", shown.length > 0);
    if (shown.length) span.style.setProperty("--label-colour", labelColour(shown[0]));
  }
}

// --- corrections -------------------------------------------------------------------------------------------

function renderCorrections() {
  const list = $("correct-labels");
  list.replaceChildren();
  const tagged = new Set(state.analysis.labels.map((l) => l.label));
  for (const label of Object.keys(state.analysis.scores)) {
    const li = document.createElement("li");
    li.innerHTML = '<label class="inline"><input type="checkbox"><span></span></label> ' +
      '<button type="button" class="pick"></button> <span class="chosen"></span>';
    const box = li.querySelector("input");
    box.value = label;
    box.checked = label in state.evidence || tagged.has(label);
    li.querySelector("span").textContent = labelName(label);
    const pick = li.querySelector(".pick");
    pick.textContent = state.picking === label ? t("picking") : t("pick");
    pick.addEventListener("click", () => {
      state.picking = label;
      $("article").classList.add("picking");
      renderCorrections();
    });
    li.querySelector(".chosen").textContent = state.evidence[label] || t("noEvidence");
    list.append(li);
  }
}

function pickEvidence(sentence) {
  if (!state.picking) return;
  state.evidence[state.picking] = sentence;
  state.picking = null;
  $("article").classList.remove("picking");
  renderCorrections();
}

async function sendCorrection() {
  const labels = [...$("correct-labels").querySelectorAll("input:checked")].map((box) => box.value);
  const evidence = Object.fromEntries(Object.entries(state.evidence).filter(([label]) => labels.includes(label)));
  try {
    const summary = $("correct-summary").value.trim() || null;
    const body = {...state.article, labels, evidence, summary, model: state.analysis.model};
    const saved = await api("/v1/feedback", body);
    $("correction-status").textContent = t("saved", {id: saved.id});
    showMessage("");
  } catch (error) {
    showMessage(explain(error));
  }
}

// --- a file of articles ------------------------------------------------------------------------------------

async function readText(file) {
  if (!file.name.endsWith(".gz")) return file.text();
  const stream = file.stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).text();
}

function parseCsv(text) {
  // RFC 4180: quoted fields may hold commas, quotes ("") and newlines. Returns [lineNumber, cells] per record.
  const records = [];
  let cells = [], cell = "", quoted = false, line = 1, start = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else { if (c === "\n") line++; cell += c; }
    } else if (c === '"') quoted = true;
    else if (c === ",") { cells.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      cells.push(cell);
      if (cells.some((v) => v !== "")) records.push([start, cells]);
      cells = []; cell = ""; line++; start = line;
    } else cell += c;
  }
  cells.push(cell);
  if (cells.some((v) => v !== "")) records.push([start, cells]);
  return records;
}

function parseArticles(name, text) {
  // [{line, article}] and [{line, error}], as naba predict reads them: id, title, text; other fields ignored.
  const articles = [], errors = [];
  const add = (line, row) => {
    if (typeof row?.text !== "string" || !row.text.trim()) errors.push({line, error: t("noText")});
    else articles.push({line, article: {id: row.id == null || row.id === "" ? `line-${line}` : String(row.id), text: row.text,
                                        title: row.title || null}});
  };
  if (/\.csv(\.gz)?$/.test(name)) {
    const [header, ...rows] = parseCsv(text.replace(/^\uFEFF/, ""));
    for (const [line, cells] of rows) add(line, Object.fromEntries(header[1].map((k, i) => [k, cells[i] ?? ""])));
  } else {
    text.split("\n").forEach((raw, i) => {
      if (!raw.trim()) return;
      try { add(i + 1, JSON.parse(raw)); } catch { errors.push({line: i + 1, error: t("badJson")}); }
    });
  }
  return {articles, errors};
}

async function analyzeChunk(items, options) {
  // One batch call; when the service refuses the batch for one article, each is sent alone so only it fails.
  try {
    const {results} = await api("/v1/analyze/batch", {articles: items.map((i) => i.article), ...options});
    return results.map((result, k) => ({line: items[k].line, result}));
  } catch (error) {
    if (![413, 422].includes(error.status) || items.length === 1) {
      if (items.length === 1 && [413, 422].includes(error.status)) return [{line: items[0].line, error: error.detail}];
      throw error;
    }
    const alone = [];
    for (const item of items) alone.push(...await analyzeChunk([item], options));
    return alone;
  }
}

async function runBatch(event) {
  event.preventDefault();
  const file = $("batch-file").files[0];
  if (!file) return;
  const button = $("batch-run");
  button.disabled = true;
  try {
    if (!state.model) await loadModel();
    let parsed;
    try {
      parsed = parseArticles(file.name, await readText(file));
    } catch (error) {
      showMessage(t("errFile", {detail: String(error)}));
      return;
    }
    const errors = [...parsed.errors], results = [];
    const size = state.model?.max_batch_articles || 16;
    const progress = $("batch-progress");
    progress.hidden = false;
    progress.max = parsed.articles.length || 1;
    progress.value = 0;
    for (let start = 0; start < parsed.articles.length; start += size) {
      const chunk = parsed.articles.slice(start, start + size);
      for (const answer of await analyzeChunk(chunk, requestOptions())) {
        if (answer.error) errors.push(answer);
        else results.push(answer);
      }
      progress.value = start + chunk.length;
      $("batch-count").textContent = t("progress", {done: progress.value, total: parsed.articles.length});
    }
    state.batch = results.sort((a, b) => a.line - b.line).map((a) => a.result);
    renderBatch(errors.sort((a, b) => a.line - b.line));
    showMessage("");
  } catch (error) {
    showMessage(explain(error));
  } finally {
    button.disabled = false;
  }
}

function renderBatch(errors) {
  $("batch-errors").hidden = errors.length === 0;
  $("batch-error-list").replaceChildren(...errors.map((e) => {
    const li = document.createElement("li");
    li.textContent = t("line", {n: e.line, why: e.error});
    return li;
  }));
  const counts = {};
  for (const r of state.batch) for (const l of r.labels) counts[l.label] = (counts[l.label] || 0) + 1;
  const labels = state.model?.labels || Object.keys(counts);
  $("label-counts").textContent = labels.map((l) => `${labelName(l)}: ${counts[l] || 0}`).join(" · ");
  const filter = $("batch-filter");
  filter.replaceChildren(new Option(t("all"), ""), ...labels.map((l) => new Option(labelName(l), l)));
  renderBatchTable();
  $("batch-results").hidden = false;
}

function renderBatchTable() {
  const only = $("batch-filter").value;
  const rows = state.batch.filter((r) => !only || r.labels.some((l) => l.label === only));
  $("batch-table").replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    for (const value of [r.id, r.labels.map((l) => labelName(l.label)).join("، ") || t("none"), r.summary]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    return tr;
  }));
}

function download(name, type, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], {type}));
  link.download = name;
  link.click();
  URL.revokeObjectURL(link.href);
}

function csvCell(value) {
  const text = String(value ?? "");
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function downloadCsv() {
  const labels = state.model?.labels || [];
  const lines = [["id", "labels", ...labels.map((l) => `score_${l}`), "summary"].join(",")];
  for (const r of state.batch) {
    const cells = [r.id, r.labels.map((l) => l.label).join("|"), ...labels.map((l) => r.scores[l]), r.summary];
    lines.push(cells.map(csvCell).join(","));
  }
  download("naba-results.csv", "text/csv", lines.join("\n") + "\n");
}

// --- wiring ------------------------------------------------------------------------------------------------

function selectTab(name) {
  for (const tab of ["single", "batch"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(tab).hidden = tab !== name;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("lang-toggle").addEventListener("click", () => setLanguage(state.lang === "ar" ? "en" : "ar"));
  $("tab-single").addEventListener("click", () => selectTab("single"));
  $("tab-batch").addEventListener("click", () => selectTab("batch"));
  $("analyze-form").addEventListener("submit", analyze);
  $("operating-point").addEventListener("change", () => { if (state.analysis) analyze(); });
  $("summary-mode").addEventListener("change", () => {
    const ratio = $("summary-mode").value === "ratio";
    Object.assign($("summary-value"), ratio ? {min: "0.05", max: "1", step: "0.05", value: "0.3"}
                                            : {min: "1", max: "", step: "1", value: "3"});
  });
  $("send-correction").addEventListener("click", sendCorrection);
  $("batch-form").addEventListener("submit", runBatch);
  $("batch-filter").addEventListener("change", renderBatchTable);
  $("download-jsonl").addEventListener("click", () => download("naba-results.jsonl", "application/x-ndjson",
    state.batch.map((r) => JSON.stringify(r)).join("\n") + "\n"));
  $("download-csv").addEventListener("click", downloadCsv);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("api-key").value.trim() || null;
    if ($("key-remember").checked && state.key) sessionStorage.setItem("naba-key", state.key);
    else sessionStorage.removeItem("naba-key");
    $("key-panel").hidden = true;
    loadModel();
  });
  loadModel();
});
