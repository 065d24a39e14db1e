/* Cell renderers of the leaderboard grid (dash-ag-grid looks them up here). */
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

/* Navigate inside the Dash app without a reload, as dcc.Link does. */
window.sprayNavigate = function (href) {
  window.history.pushState({}, "", href);
  window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
  window.scrollTo(0, 0);
};

/* A link that navigates inside the app (a plain click) or as a link (modifier keys, middle button). */
function sprayAppLink(href, className, text) {
  return React.createElement(
    "a",
    {
      href: href,
      className: className,
      onClick: function (event) {
        if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
        event.preventDefault();
        window.sprayNavigate(href);
      },
    },
    text
  );
}

dagcomponentfuncs.ClassLink = function (props) {
  return sprayAppLink("/class/" + encodeURIComponent(props.value), "class-link", props.value);
};

/* The compare page for the row's class (leaderboard with several runs). */
dagcomponentfuncs.CompareLink = function (props) {
  return sprayAppLink("/compare?class=" + encodeURIComponent(props.value), "compare-link", "compare →");
};

/* A sparkline of the smallest eigenvalues; the eigengap's position is marked in orange. */
dagcomponentfuncs.SpectrumGlyph = function (props) {
  var values = props.value || [];
  var width = 104, height = 26, pad = 3;
  if (!values.length) return null;
  var max = Math.max.apply(null, values) || 1;
  var step = (width - 2 * pad) / Math.max(1, values.length - 1);
  var points = values.map(function (v, i) {
    return (pad + i * step).toFixed(1) + "," + (height - pad - (v / max) * (height - 2 * pad)).toFixed(1);
  });
  var gap = props.data && props.data.eigengap_k;
  var children = [
    React.createElement("polyline", {
      key: "line", points: points.join(" "), fill: "none", stroke: "#3d5a80", strokeWidth: 1.4,
    }),
  ];
  if (gap && gap < values.length) {
    var x = pad + (gap - 0.5) * step;
    children.push(React.createElement("line", {
      key: "gap", x1: x, x2: x, y1: pad, y2: height - pad, stroke: "#ee6c4d", strokeWidth: 1.2,
      strokeDasharray: "2,2",
    }));
  }
  return React.createElement(
    "svg",
    { width: width, height: height, className: "spectrum-glyph", role: "img",
      "aria-label": "eigenvalue spectrum" },
    children
  );
};
