// A Leaflet map whose base layer is the municipal areas the daemon serves (GET
// /v1/staff/areas): it works with no internet. console.tile_url, when configured, adds a tile
// layer under the areas.
import * as L from "./vendor/leaflet-1.9.4/leaflet-src.esm.js";
import { get } from "./api.js";
import { pick } from "./i18n.js";
import { LEVELS } from "./ui.js";

export { L };
let areasPromise = null;

/** The municipal areas (GeoJSON FeatureCollection), fetched once per page load. */
export function areas() {
  if (!areasPromise) {
    areasPromise = get("/v1/staff/areas").then((r) => {
      if (!r.ok) { areasPromise = null; throw new Error((r.data && r.data.error) || String(r.status)); }
      return r.data;
    });
  }
  return areasPromise;
}

/** The municipality of a 6- or 7-digit code (7: a JMA sub-area, named by its municipality). */
export function areaByCode(collection, code) {
  return collection.features.find((f) => f.properties.code === code)
    || collection.features.find((f) => code.length === 7 && f.properties.code.slice(0, 5) === code.slice(0, 5));
}

const BASE_STYLE = { color: "#4a5563", weight: 1, fillColor: "#e8ecef", fillOpacity: 0.6 };

/**
 * A map in `el` with the areas drawn: resolves to {map, base, byCode, collection}.
 * onArea(code, latlng) is called when a municipality is clicked.
 */
export async function createMap(el, session, { onArea, label } = {}) {
  el.classList.add("map");
  el.setAttribute("role", "region");
  if (label) el.setAttribute("aria-label", label);
  const map = L.map(el, { zoomControl: true, attributionControl: true, doubleClickZoom: false,
    preferCanvas: false }).setView([37.4, 140.2], 8);
  map.attributionControl.setPrefix(false);
  if (session && session.tile_url) {
    L.tileLayer(session.tile_url, { attribution: session.tile_attribution || "", maxZoom: 18 }).addTo(map);
  }
  const collection = await areas();
  const byCode = new Map();
  const base = L.geoJSON(collection, {
    style: () => ({ ...BASE_STYLE, fillOpacity: session && session.tile_url ? 0.25 : 0.6 }),
    onEachFeature: (feature, layer) => {
      byCode.set(feature.properties.code, layer);
      layer.bindTooltip(pick({ ja: feature.properties.name, en: feature.properties.name_en }), { sticky: true });
      if (onArea) layer.on("click", (ev) => { L.DomEvent.stop(ev); onArea(feature.properties.code, ev.latlng); });
    },
  }).addTo(map);
  map.fitBounds(base.getBounds());
  return { map, base, byCode, collection, baseStyle: BASE_STYLE };
}

/** Leaflet layers drawing an order's stored area (codes, circle or GeoJSON) in its level's colour. */
export function orderLayer(order, collection) {
  const colour = (LEVELS[order.level] || LEVELS[4]).colour;
  const style = { color: colour, weight: 2, fillColor: colour, fillOpacity: 0.35 };
  const area = order.area || {};
  if (area.area_codes) {
    const features = area.area_codes.map((c) => areaByCode(collection, c)).filter(Boolean);
    return L.geoJSON({ type: "FeatureCollection", features }, { style: () => style, interactive: false });
  }
  if (area.circle) {
    return L.circle([area.circle.lat, area.circle.lon], { radius: area.circle.radius_m, ...style, interactive: false });
  }
  return L.geoJSON(area, { style: () => style, interactive: false });
}
