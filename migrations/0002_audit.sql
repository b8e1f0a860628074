CREATE TABLE `audit_checkpoints` (
	`chain` text PRIMARY KEY NOT NULL,
	`through_seq` integer NOT NULL,
	`through_hash` text NOT NULL,
	`deleted_rows` integer NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `request_events` (
	`id` text PRIMARY KEY NOT NULL,
	`chain` text NOT NULL,
	`seq` integer NOT NULL,
	`ts` integer NOT NULL,
	`user_id` text,
	`key_id` text,
	`group` text,
	`route` text,
	`method` text NOT NULL,
	`path` text NOT NULL,
	`client_ip` text,
	`country` text,
	`colo` text,
	`decision` text NOT NULL,
	`decided_by` text,
	`code` text,
	`reason` text,
	`status` integer NOT NULL,
	`origin_status` integer,
	`bytes_in` integer,
	`bytes_out` integer,
	`latency_ms` integer NOT NULL,
	`origin_latency_ms` integer,
	`limit_state` text,
	`prev_hash` text,
	`hash` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `request_events_chain_seq_idx` ON `request_events` (`chain`,`seq`);--> statement-breakpoint
CREATE INDEX `request_events_ts_idx` ON `request_events` (`ts`,`id`);--> statement-breakpoint
CREATE INDEX `request_events_user_idx` ON `request_events` (`user_id`,`ts`);--> statement-breakpoint
CREATE INDEX `request_events_key_idx` ON `request_events` (`key_id`,`ts`);--> statement-breakpoint
CREATE INDEX `request_events_route_idx` ON `request_events` (`route`,`ts`);--> statement-breakpoint
CREATE TABLE `usage_rollups` (
	`granularity` text NOT NULL,
	`bucket` integer NOT NULL,
	`dim` text NOT NULL,
	`value` text NOT NULL,
	`decision` text NOT NULL,
	`requests` integer DEFAULT 0 NOT NULL,
	`s1xx` integer DEFAULT 0 NOT NULL,
	`s2xx` integer DEFAULT 0 NOT NULL,
	`s3xx` integer DEFAULT 0 NOT NULL,
	`s4xx` integer DEFAULT 0 NOT NULL,
	`s5xx` integer DEFAULT 0 NOT NULL,
	`latency_sum_ms` integer DEFAULT 0 NOT NULL,
	`bytes_in` integer DEFAULT 0 NOT NULL,
	`bytes_out` integer DEFAULT 0 NOT NULL,
	`l00` integer DEFAULT 0 NOT NULL,
	`l01` integer DEFAULT 0 NOT NULL,
	`l02` integer DEFAULT 0 NOT NULL,
	`l03` integer DEFAULT 0 NOT NULL,
	`l04` integer DEFAULT 0 NOT NULL,
	`l05` integer DEFAULT 0 NOT NULL,
	`l06` integer DEFAULT 0 NOT NULL,
	`l07` integer DEFAULT 0 NOT NULL,
	`l08` integer DEFAULT 0 NOT NULL,
	`l09` integer DEFAULT 0 NOT NULL,
	`l10` integer DEFAULT 0 NOT NULL,
	`l11` integer DEFAULT 0 NOT NULL,
	`l12` integer DEFAULT 0 NOT NULL,
	`l13` integer DEFAULT 0 NOT NULL,
	`l14` integer DEFAULT 0 NOT NULL,
	`l15` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`granularity`, `dim`, `value`, `bucket`, `decision`)
);
--> statement-breakpoint
CREATE INDEX `usage_rollups_bucket_idx` ON `usage_rollups` (`granularity`,`bucket`);--> statement-breakpoint
ALTER TABLE `admin_audit` ADD `seq` integer;--> statement-breakpoint
ALTER TABLE `admin_audit` ADD `prev_hash` text;--> statement-breakpoint
ALTER TABLE `admin_audit` ADD `hash` text;--> statement-breakpoint
CREATE UNIQUE INDEX `admin_audit_seq_idx` ON `admin_audit` (`seq`);