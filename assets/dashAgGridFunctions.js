/* Functions that dash-ag-grid column definitions name in {"function": ...} strings. */
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});

/* Sort numbers with missing values (null: a class without a tau) last in either direction. */
dagfuncs.sprayNullsLast = function (valueA, valueB, nodeA, nodeB, isDescending) {
  var missingA = valueA == null, missingB = valueB == null;
  if (missingA || missingB) {
    if (missingA && missingB) return 0;
    return (missingA ? 1 : -1) * (isDescending ? -1 : 1);
  }
  return valueA - valueB;
};
