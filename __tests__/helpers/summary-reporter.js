// After jest's own summary: each project's time and its slowest suites (CI's budget
// is read from these), then one plain closing line ("tests: N passed, N failed,
// N skipped") that CI reads.
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const projects = new Map();
    for (const suite of results.testResults) {
      const project = suite.displayName?.name ?? "default";
      const seconds = (suite.perfStats.end - suite.perfStats.start) / 1000;
      const entry = projects.get(project) ?? { seconds: 0, suites: [] };
      entry.seconds += seconds;
      entry.suites.push({ file: suite.testFilePath.replace(/^.*__tests__\//, ""), seconds });
      projects.set(project, entry);
    }
    const minutes = (seconds) => `${(seconds / 60).toFixed(1)} min`;
    process.stdout.write("\ntime by project:\n");
    for (const [project, { seconds, suites }] of projects) {
      const slowest = suites.sort((a, b) => b.seconds - a.seconds).slice(0, 5);
      process.stdout.write(`  ${project}: ${minutes(seconds)} (${slowest.map((s) => `${s.file} ${Math.round(s.seconds)} s`).join(", ")})\n`);
    }
    const total = [...projects.values()].reduce((sum, p) => sum + p.seconds, 0);
    process.stdout.write(`  all: ${minutes(total)}\n`);
    const skipped = results.numPendingTests + results.numTodoTests;
    process.stdout.write(`\ntests: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${skipped} skipped\n`);
  }
}
module.exports = SummaryReporter;
