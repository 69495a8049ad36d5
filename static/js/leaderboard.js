// Draws the interval plot from the figure JSON the server embedded (plotly.js served locally).
const fig = JSON.parse(document.getElementById("figure-data").textContent);
const layout = { ...fig.layout, paper_bgcolor: "#2a2a2a", plot_bgcolor: "#202020", font: { color: "#e8e8e8" } };
window.Plotly.newPlot("interval-plot", fig.data, layout, { responsive: true, displaylogo: false });
