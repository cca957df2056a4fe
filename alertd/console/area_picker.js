// Choosing an order's area three ways: municipalities (a keyboard-friendly list, or clicks on
// the map), a polygon drawn on the map (click the vertices, then 完了 or a double-click), or a
// circle (click its centre; radius, latitude and longitude are editable fields).
import { createMap, L } from "./map.js";
import { pick } from "./i18n.js";
import { h, fill } from "./ui.js";

export const strings = {
  ja: {
    "area.legend": "対象区域", "area.codes": "市町村を選ぶ", "area.polygon": "多角形を描く", "area.circle": "円を描く",
    "area.list": "市町村の一覧", "area.map": "区域を選ぶ地図", "area.finish": "多角形を完了", "area.clear": "消去",
    "area.polygon.help": "地図上で頂点を順にクリックし、「多角形を完了」またはダブルクリックで閉じます（3点以上）。",
    "area.circle.help": "地図上で中心をクリックし、半径を入力します。", "area.lat": "中心の緯度", "area.lon": "中心の経度",
    "area.radius": "半径 (m)", "area.points": "頂点 {n} 個", "area.selected": "{n} 市町村を選択",
  },
  en: {
    "area.legend": "Area", "area.codes": "Pick municipalities", "area.polygon": "Draw a polygon", "area.circle": "Draw a circle",
    "area.list": "Municipalities", "area.map": "Map to choose the area", "area.finish": "Finish polygon", "area.clear": "Clear",
    "area.polygon.help": "Click the corners on the map in turn, then Finish polygon or double-click to close it (3 or more).",
    "area.circle.help": "Click the centre on the map and enter the radius.", "area.lat": "Centre latitude", "area.lon": "Centre longitude",
    "area.radius": "Radius (m)", "area.points": "{n} corners", "area.selected": "{n} municipalities selected",
  },
};

const SELECTED = { color: "#0b57d0", weight: 2, fillColor: "#0b57d0", fillOpacity: 0.45 };
const DRAWN = { color: "#0b57d0", weight: 3, fillColor: "#0b57d0", fillOpacity: 0.25, interactive: false };

/**
 * An area picker in `el` (form controls) with its map in `mapEl`. onChange() is called on
 * every change. Resolves to {value(): area JSON or null, describe(): text}.
 */
export async function areaPicker(el, mapEl, ctx, onChange = () => {}) {
  const { t } = ctx;
  let mode = "codes";
  const codes = new Set();
  let vertices = [];
  let closed = false;
  let centre = null;
  let shape = null;
  let marks = L.layerGroup();

  const modeButtons = ["codes", "polygon", "circle"].map((m) => h("button", {
    type: "button", class: "secondary", id: `mode-${m}`, "aria-pressed": String(m === mode),
    onclick: () => setMode(m) }, t(`area.${m}`)));
  const status = h("p", { class: "muted", "aria-live": "polite", id: "area-status" });
  const list = h("div", { class: "codes", role: "group", "aria-label": t("area.list") });
  const finish = h("button", { type: "button", id: "finish-polygon", onclick: () => closePolygon() }, t("area.finish"));
  const clear = h("button", { type: "button", class: "secondary", id: "clear-area", onclick: () => reset() }, t("area.clear"));
  const lat = h("input", { id: "circle-lat", type: "number", step: "0.0001", min: "-90", max: "90" });
  const lon = h("input", { id: "circle-lon", type: "number", step: "0.0001", min: "-180", max: "180" });
  const radius = h("input", { id: "circle-radius", type: "number", step: "100", min: "1", value: "2000" });
  [lat, lon, radius].forEach((i) => i.addEventListener("input", () => {
    centre = lat.value && lon.value ? L.latLng(Number(lat.value), Number(lon.value)) : null;
    redraw();
  }));
  const polygonPanel = h("div", { id: "polygon-panel" }, h("p", { class: "help" }, t("area.polygon.help")),
    h("div", { class: "tools" }, finish, clear));
  const circlePanel = h("div", { id: "circle-panel" }, h("p", { class: "help" }, t("area.circle.help")),
    h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: "circle-lat" }, t("area.lat")), lat),
      h("div", { class: "field" }, h("label", { for: "circle-lon" }, t("area.lon")), lon),
      h("div", { class: "field" }, h("label", { for: "circle-radius" }, t("area.radius")), radius)));
  fill(el, h("fieldset", {}, h("legend", {}, t("area.legend")),
    h("div", { class: "tools", role: "group" }, modeButtons), list, polygonPanel, circlePanel, status));

  const m = await createMap(mapEl, ctx.session, { label: t("area.map"), onArea: (code, latlng) => {
    if (mode === "codes") toggle(code); else point(latlng);
  } });
  marks.addTo(m.map);
  m.map.on("click", (ev) => { if (mode !== "codes") point(ev.latlng); });
  m.map.on("dblclick", () => { if (mode === "polygon") closePolygon(); });
  const features = [...m.collection.features].sort((a, b) => (a.properties.code < b.properties.code ? -1 : 1));
  fill(list, features.map((f) => {
    const code = f.properties.code;
    const box = h("input", { type: "checkbox", value: code, id: `code-${code}`,
      onchange: (ev) => toggle(code, ev.target.checked) });
    return h("label", { for: `code-${code}` }, box, " ", pick({ ja: f.properties.name, en: f.properties.name_en }));
  }));

  function toggle(code, on = !codes.has(code)) {
    if (on) codes.add(code); else codes.delete(code);
    const box = list.querySelector(`#code-${code}`);
    if (box) box.checked = on;
    redraw();
  }
  function point(latlng) {
    if (mode === "polygon") {
      if (closed) { vertices = []; closed = false; }
      const last = vertices[vertices.length - 1];
      if (!last || m.map.latLngToContainerPoint(last).distanceTo(m.map.latLngToContainerPoint(latlng)) > 4) {
        vertices.push(latlng);
      }
    } else if (mode === "circle") {
      centre = latlng;
      lat.value = latlng.lat.toFixed(5);
      lon.value = latlng.lng.toFixed(5);
    }
    redraw();
  }
  function closePolygon() { if (vertices.length >= 3) { closed = true; redraw(); } }
  function reset() { vertices = []; closed = false; centre = null; lat.value = ""; lon.value = ""; redraw(); }
  function setMode(next) {
    mode = next;
    modeButtons.forEach((b) => b.setAttribute("aria-pressed", String(b.id === `mode-${next}`)));
    list.hidden = next !== "codes";
    polygonPanel.hidden = next !== "polygon";
    circlePanel.hidden = next !== "circle";
    m.map.getContainer().style.cursor = next === "codes" ? "" : "crosshair";
    redraw();
  }
  function redraw() {
    m.byCode.forEach((layer, code) => layer.setStyle(mode === "codes" && codes.has(code) ? SELECTED : m.baseStyle));
    if (shape) { shape.remove(); shape = null; }
    marks.clearLayers();
    if (mode === "polygon" && vertices.length) {
      vertices.forEach((v) => L.circleMarker(v, { radius: 4, color: "#0b57d0", interactive: false }).addTo(marks));
      shape = (closed ? L.polygon(vertices, DRAWN) : L.polyline(vertices, DRAWN)).addTo(m.map);
    } else if (mode === "circle" && centre && Number(radius.value) > 0) {
      shape = L.circle(centre, { radius: Number(radius.value), ...DRAWN }).addTo(m.map);
    }
    status.textContent = mode === "codes" ? t("area.selected", { n: codes.size })
      : mode === "polygon" ? t("area.points", { n: vertices.length }) : "";
    onChange();
  }
  setMode("codes");

  return {
    value() {
      if (mode === "codes") return codes.size ? { area_codes: [...codes].sort() } : null;
      if (mode === "polygon") {
        if (!closed || vertices.length < 3) return null;
        const ring = vertices.map((v) => [Number(v.lng.toFixed(6)), Number(v.lat.toFixed(6))]);
        return { type: "Polygon", coordinates: [[...ring, ring[0]]] };
      }
      if (!centre || !(Number(radius.value) > 0)) return null;
      return { circle: { lat: Number(centre.lat.toFixed(6)), lon: Number(centre.lng.toFixed(6)), radius_m: Number(radius.value) } };
    },
    map: m,
  };
}
