CREATE TABLE `admin_sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`nonce_hash` text NOT NULL,
	`client_ip` text,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `admin_sessions_nonce_hash_unique` ON `admin_sessions` (`nonce_hash`);--> statement-breakpoint
CREATE INDEX `admin_sessions_expires_at_idx` ON `admin_sessions` (`expires_at`);--> statement-breakpoint
CREATE TABLE `admin_sign_in_failures` (
	`client` text PRIMARY KEY NOT NULL,
	`window_start` integer NOT NULL,
	`failures` integer NOT NULL
);
