// What the console's views share: building elements, saying durations and errors, and
// refreshing a view while its tab is open.

// An element with attributes (set as attributes, so data-* and testids read as written) and
// children (elements or text).
export const el = (tag, attributes = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
};

// Seconds as `intent status` prints them.
export function seconds(value) {
  if (value === null || value === undefined) return "-";
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

// A recorded error (a JSON object with a message, or anything) as one line.
export function errorText(error) {
  if (error && typeof error === "object") return String(error.message ?? JSON.stringify(error));
  return String(error);
}

// Calls `refresh` every `ms` while `panel`'s section is shown: one refresh at a time, none
// after stop() or for a panel that a later restart() replaced; resume() when the tab opens
// again.
export function poller(refresh, ms) {
  let timer = null;
  let generation = 0;
  let panel = null;
  const run = (mine, delay) => {
    if (timer !== null) return;
    timer = setTimeout(async () => {
      timer = null;
      if (mine !== generation || panel.closest("section")?.hidden) return;
      await refresh();
      run(mine, ms);
    }, delay);
  };
  const stop = () => {
    generation += 1;
    clearTimeout(timer);
    timer = null;
  };
  return {
    stop,
    restart(forPanel) {
      stop();
      panel = forPanel;
      run(generation, 0);
    },
    resume() {
      if (panel) run(generation, 0);
    },
  };
}
