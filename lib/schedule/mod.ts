/**
 * Scheduling measurements with cron: crontab entries that `pctcp schedule` adds, lists and
 * removes, and the date patterns that rotate their output daily.
 * @module
 */

export * from "./date_pattern.ts";
export * from "./crontab.ts";
