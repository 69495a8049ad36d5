// The page's string catalog (embedded by the server as JSON): the one place texts come from.
export function readConfig() {
  return JSON.parse(document.getElementById("panelrank-config").textContent);
}

export function makeT(strings) {
  return (key, values = {}) => {
    const text = strings[key];
    if (text === undefined) throw new Error(`missing string ${key}`);
    return text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
  };
}
