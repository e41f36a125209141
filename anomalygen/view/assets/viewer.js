// anomalygen view: the page's script. Data: #index (JSON) and one base64 block #d<i> per sample
// (layout in anomalygen/view/encode.py). three.js comes from the inlined #three-* blocks, loaded as
// blob: modules, so the page fetches nothing. This script is an async module placed before the
// data blocks: it runs while the browser still parses them, and waits for a block it needs.
const $ = (id) => document.getElementById(id);
const INDEX = JSON.parse($('index').textContent);
const moduleUrl = (text) => URL.createObjectURL(new Blob([text], { type: 'text/javascript' }));
const coreUrl = moduleUrl($('three-core').textContent);
const threeUrl = moduleUrl($('three-module').textContent.replaceAll('"./three.core.min.js"', JSON.stringify(coreUrl)));
const orbitUrl = moduleUrl($('three-orbit').textContent.replace(/from\s*['"]three['"]/, 'from ' + JSON.stringify(threeUrl)));

let THREE, OrbitControls;
try {
  THREE = await import(threeUrl);
  ({ OrbitControls } = await import(orbitUrl));
} catch (err) {
  fail('the viewer library did not load: ' + err);
  throw err;
}
document.body.dataset.three = THREE.REVISION;

const RUN = INDEX.kind === 'run';
const SAMPLES = INDEX.samples;
const BINS = INDEX.score_bins - 1;
const rgb = (c) => new THREE.Vector3(c[0] / 255, c[1] / 255, c[2] / 255);
const fmt = (x) => x.toLocaleString('en-US');

function fail(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = false;
}

// ---- rendering -------------------------------------------------------------------------------
const vertexShader = `
attribute vec2 oct;
attribute vec3 rgb;
attribute float score;
uniform float uPx;        // framebuffer pixels per world unit at distance 1
uniform float uSize;      // point diameter in world units
uniform int uK;           // points [0, uK) are anomalous (ground truth)
uniform int uMode;        // 0: ground truth, 1: predicted map
uniform bool uLabels;
uniform float uTint;      // how far an anomalous point's colour moves to red (1 for grey objects)
uniform float uThr;       // threshold bin: points with score bin >= uThr are flagged
uniform float uBins;
uniform float uLift;      // flagged points move this far toward the camera (not hidden in grooves)
uniform vec3 uAnomaly;
uniform vec3 uRamp[5];
varying vec3 vColor;

vec3 octDecode(vec2 e) {
  e = e * 2.0 - 1.0;
  vec3 v = vec3(e, 1.0 - abs(e.x) - abs(e.y));
  if (v.z < 0.0) v.xy = (1.0 - abs(v.yx)) * vec2(v.x >= 0.0 ? 1.0 : -1.0, v.y >= 0.0 ? 1.0 : -1.0);
  return normalize(v);
}

vec3 ramp(float t) {
  float x = clamp(t, 0.0, 1.0) * 4.0;
  int i = int(min(floor(x), 3.0));
  return mix(uRamp[i], uRamp[i + 1], x - float(i));
}

void main() {
  vec4 mv = modelViewMatrix * vec4(position, 1.0);
  vec3 toCam = normalize(-mv.xyz);
  vec3 n = normalize(normalMatrix * octDecode(oct));
  float shade = 0.3 + 0.7 * abs(dot(n, toCam));     // headlight; normals carry no inside/outside
  vec3 color = rgb * shade;
  bool flagged = false;
  if (uMode == 0) {
    flagged = uLabels && gl_VertexID < uK;
    if (flagged) color = mix(color, uAnomaly * (0.55 + 0.45 * shade), uTint);
  } else {
    float bin = floor(score * uBins + 0.5);
    flagged = bin >= uThr;
    if (flagged) {
      float t = uThr >= uBins ? 1.0 : (bin - uThr) / (uBins - uThr);
      color = ramp(0.45 + 0.55 * t) * (0.6 + 0.4 * shade);
    }
  }
  if (flagged) mv.xyz += toCam * uLift;
  vColor = color;
  gl_Position = projectionMatrix * mv;
  gl_PointSize = max(1.5, uSize * uPx / -mv.z);
}`;

const fragmentShader = `
varying vec3 vColor;
void main() {
  vec2 c = gl_PointCoord - 0.5;
  if (dot(c, c) > 0.25) discard;   // round points
  gl_FragColor = vec4(vColor, 1.0);
}`;

function material(mode) {
  return new THREE.ShaderMaterial({
    vertexShader, fragmentShader,
    uniforms: {
      uPx: { value: 1 }, uSize: { value: 0.01 }, uK: { value: 0 }, uMode: { value: mode },
      uLabels: { value: true }, uTint: { value: 1 }, uThr: { value: 0 }, uBins: { value: BINS },
      uLift: { value: 0.006 }, uAnomaly: { value: rgb(INDEX.colors.anomaly) },
      uRamp: { value: INDEX.colors.ramp.map(rgb) },
    },
  });
}

const canvas = $('canvas');
const stage = $('stage');
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
renderer.setClearColor(0xf4f5f7, 1);
const camera = new THREE.PerspectiveCamera(30, 1, 0.01, 100);
const controls = new OrbitControls(camera, canvas);
controls.addEventListener('change', () => requestDraw());
const panes = RUN ? [material(0), material(1)] : [material(0)];
const scenes = panes.map(() => new THREE.Scene());
const clouds = panes.map((m, i) => {
  const p = new THREE.Points(new THREE.BufferGeometry(), m);
  p.frustumCulled = false;
  scenes[i].add(p);
  return p;
});
$('captions').innerHTML = RUN ? '<div>ground truth</div><div id="pred-caption">predicted</div>' : '';

let current = -1;
let frames = 0;
let pending = false;
let sizeFactor = parseFloat($('size').value);

function requestDraw() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(draw);
}

function draw() {
  pending = false;
  const w = Math.max(1, stage.clientWidth), h = Math.max(1, stage.clientHeight);
  const size = renderer.getSize(new THREE.Vector2());
  if (size.x !== w || size.y !== h) renderer.setSize(w, h, false);
  const pw = w / panes.length;
  updateAspect();
  const px = h * renderer.getPixelRatio() / (2 * Math.tan(THREE.MathUtils.degToRad(camera.fov) / 2));
  renderer.setScissorTest(true);
  panes.forEach((m, i) => {
    m.uniforms.uPx.value = px;
    renderer.setViewport(i * pw, 0, pw, h);
    renderer.setScissor(i * pw, 0, pw, h);
    renderer.render(scenes[i], camera);
  });
  document.body.dataset.sample = String(current);
  document.body.dataset.frame = String(++frames);
  if (frames === 1) document.body.dataset.firstFrameMs = performance.now().toFixed(0);  // since navigation began
}

function updateAspect() {
  camera.aspect = Math.max(1, stage.clientWidth) / panes.length / Math.max(1, stage.clientHeight);
  camera.updateProjectionMatrix();
}

new ResizeObserver(() => requestDraw()).observe(stage);

// ---- samples ---------------------------------------------------------------------------------
function bytesOf(i) {
  const text = $('d' + i).textContent;
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let j = 0; j < raw.length; j++) out[j] = raw.charCodeAt(j);
  return out;
}

function geometryOf(i) {
  const s = SAMPLES[i];
  const n = s.n;
  const bin = bytesOf(i);
  let off = 6 * n;
  const g = new THREE.BufferGeometry();
  g.setAttribute('position', new THREE.BufferAttribute(new Uint16Array(bin.buffer, 0, 3 * n), 3, true));
  g.setAttribute('oct', new THREE.BufferAttribute(bin.subarray(off, off + 2 * n), 2, true));
  off += 2 * n;
  let colors;
  if (s.rgb) {
    colors = bin.subarray(off, off + 3 * n);
    off += 3 * n;
  } else {
    colors = new Uint8Array(3 * n);
    const c = INDEX.colors.normal;
    for (let j = 0; j < 3 * n; j += 3) { colors[j] = c[0]; colors[j + 1] = c[1]; colors[j + 2] = c[2]; }
  }
  g.setAttribute('rgb', new THREE.BufferAttribute(colors, 3, true));
  g.setAttribute('score', new THREE.BufferAttribute(s.scores ? bin.subarray(off, off + n) : new Uint8Array(n), 1, true));
  return { g, scores: s.scores ? bin.subarray(off, off + n) : null };
}

let shownScores = null;

function parsed(i) {
  // a block is whole once the element after it exists (or the document is parsed)
  return $('d' + i) && ($('d' + (i + 1)) || document.readyState !== 'loading');
}

let wanted = -1;

function show(i) {
  if (i < 0 || i >= SAMPLES.length) return;
  wanted = i;
  if (!parsed(i)) {
    const wait = () => { if (wanted === i) (parsed(i) ? show(i) : setTimeout(wait, 30)); };
    setTimeout(wait, 30);
    return;
  }
  const s = SAMPLES[i];
  const { g, scores } = geometryOf(i);
  shownScores = scores;
  clouds.forEach((c) => {
    c.geometry.dispose();
    c.geometry = g;
    c.position.set(-s.size[0] / 2, -s.size[1] / 2, -s.size[2] / 2);
  });
  panes.forEach((m) => {
    m.uniforms.uK.value = s.k;
    m.uniforms.uTint.value = s.rgb ? 0.7 : 1.0;
    m.uniforms.uSize.value = s.spacing * 1.7 * sizeFactor;
  });
  const grew = current !== i;
  current = i;
  if (grew) {
    updateAspect();
    frame();
  }
  const group = INDEX.groups[s.group];
  $('sample-title').textContent = `${group.name} / ${s.split} / ${s.name}`;
  const thinned = s.n < s.total ? `showing ${fmt(s.n)} of ${fmt(s.total)} points (thinned for the page)` : `${fmt(s.n)} points`;
  const anomalous = s.anomalous_total ? ` · ${fmt(s.k)} anomalous shown, ${(100 * s.anomalous_total / s.total).toFixed(2)} % of all points` : '';
  $('counts').textContent = `${s.defect} · ${thinned}${anomalous}`;
  $('record').textContent = JSON.stringify(s.record, null, 1);
  if (RUN) setThreshold(group, false);
  document.querySelectorAll('#list button.on').forEach((b) => b.classList.remove('on'));
  const row = document.querySelector(`#list button[data-i="${i}"]`);
  if (row) {
    row.classList.add('on');
    row.closest('details').open = true;
    row.scrollIntoView({ block: 'nearest' });
  }
  history.replaceState(null, '', '#' + i);
  requestDraw();
}

function frame() {
  const s = SAMPLES[current];
  const radius = Math.max(1e-3, Math.hypot(...s.size) / 2);
  const half = Math.tan(THREE.MathUtils.degToRad(camera.fov) / 2);
  const narrow = Math.atan(half * Math.min(1, camera.aspect));  // the tighter of the two half-angles
  const dist = radius / Math.sin(narrow) * 1.02;
  const v = new THREE.Vector3(...s.view).normalize();
  camera.up.set(...s.up);
  camera.position.copy(v.multiplyScalar(dist));
  camera.near = dist / 50;
  camera.far = dist * 10;
  controls.target.set(0, 0, 0);
  controls.update();
}

// ---- threshold (runs) ------------------------------------------------------------------------
let thresholdGroup = -1;

function thresholdValue(group, bin) {
  return group.lo + (group.hi - group.lo) * bin / BINS;
}

function setThreshold(group, fromSlider) {
  const slider = $('thr');
  const gi = INDEX.groups.indexOf(group);
  if (!fromSlider && thresholdGroup !== gi) {  // a group's default: its best point-level F1
    thresholdGroup = gi;
    slider.value = group.threshold_bin ?? BINS;
  }
  const bin = parseInt(slider.value, 10);
  panes[1].uniforms.uThr.value = bin;
  const value = thresholdValue(group, bin);
  $('thr-val').textContent = value.toPrecision(4);
  $('pred-caption').textContent = `predicted: score ≥ ${value.toPrecision(4)} coloured`;
  const s = SAMPLES[current];
  let flagged = 0, hit = 0;
  if (shownScores) {
    for (let j = 0; j < shownScores.length; j++) {
      if (shownScores[j] >= bin) { flagged++; if (j < s.k) hit++; }
    }
  }
  const objectScore = s.object_score == null ? '' : `object score ${s.object_score.toPrecision(4)} · `;
  const recall = s.k ? ` · recall ${(hit / s.k).toFixed(3)}` : '';
  const precision = flagged ? ` · precision ${(hit / flagged).toFixed(3)}` : '';
  const best = group.threshold_bin == null ? '' : ` (task's best point F1 at ${thresholdValue(group, group.threshold_bin).toPrecision(4)})`;
  $('stats').textContent = `${objectScore}${fmt(flagged)} of ${fmt(s.n)} shown points flagged${recall}${precision}${best}`;
  requestDraw();
}

// ---- sidebar ---------------------------------------------------------------------------------
function buildList() {
  const byGroup = INDEX.groups.map(() => []);
  SAMPLES.forEach((s, i) => byGroup[s.group].push(i));
  const parts = INDEX.groups.map((g, gi) => {
    const info = Object.entries(g.info || {}).map(([k, v]) => `${k} ${typeof v === 'number' ? v.toPrecision(3) : v}`).join(' · ');
    const rows = byGroup[gi].map((i) => {
      const s = SAMPLES[i];
      const ratio = s.anomalous_total ? ` ${(100 * s.anomalous_total / s.total).toFixed(1)}%` : '';
      const bad = s.defect !== 'good' ? ' bad' : '';
      const key = `${g.name} ${s.split} ${s.name} ${s.defect}`.toLowerCase();
      return `<button type="button" class="row${bad}" data-i="${i}" data-key="${escapeHtml(key)}"><span class="dot"></span>`
        + `<span>${escapeHtml(s.split + '/' + s.name)}</span><span class="what">${escapeHtml(s.defect)}${ratio}</span></button>`;
    }).join('');
    return `<details${gi === 0 ? ' open' : ''}><summary>${escapeHtml(g.name)} <small>${byGroup[gi].length}`
      + `${info ? ' · ' + escapeHtml(info) : ''}</small></summary>${rows}</details>`;
  });
  $('list').innerHTML = parts.join('');
  $('list').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-i]');
    if (b) show(parseInt(b.dataset.i, 10));
  });
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function visibleRows() {
  return [...document.querySelectorAll('#list button[data-i]')].filter((b) => !b.hidden);
}

$('filter').addEventListener('input', () => {
  const q = $('filter').value.trim().toLowerCase();
  document.querySelectorAll('#list details').forEach((d) => {
    let any = false;
    d.querySelectorAll('button[data-i]').forEach((b) => {
      b.hidden = q !== '' && !b.dataset.key.includes(q);
      any = any || !b.hidden;
    });
    d.hidden = !any;
    if (q) d.open = any;
  });
});

document.addEventListener('keydown', (e) => {
  if (e.target.tagName === 'INPUT') return;  // a focused slider or box keeps its own arrow keys
  const step = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1 }[e.key];
  if (!step) return;
  const rows = visibleRows();
  const at = rows.findIndex((b) => parseInt(b.dataset.i, 10) === current);
  const next = rows[Math.min(rows.length - 1, Math.max(0, at + step))];
  if (next) {
    e.preventDefault();
    show(parseInt(next.dataset.i, 10));
  }
});

$('size').addEventListener('input', () => {
  sizeFactor = parseFloat($('size').value);
  if (current >= 0) panes.forEach((m) => { m.uniforms.uSize.value = SAMPLES[current].spacing * 1.7 * sizeFactor; });
  requestDraw();
});
$('labels').addEventListener('change', () => {
  panes[0].uniforms.uLabels.value = $('labels').checked;
  requestDraw();
});
$('reset').addEventListener('click', () => { frame(); requestDraw(); });
if (RUN) {
  $('thr-ctl').hidden = false;
  $('thr').addEventListener('input', () => setThreshold(INDEX.groups[SAMPLES[current].group], true));
}

const about = INDEX.about || {};
$('about').textContent = JSON.stringify(about, null, 1);
$('about-line').textContent = `about · ${fmt(SAMPLES.length)} samples in ${INDEX.groups.length} ${RUN ? 'tasks' : 'classes'}`;
buildList();
const start = parseInt(location.hash.slice(1), 10);
show(Number.isInteger(start) && start >= 0 && start < SAMPLES.length ? start : 0);
