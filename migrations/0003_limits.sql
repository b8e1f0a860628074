CREATE TABLE `role_limits` (
	`role_id` text NOT NULL,
	`limit_name` text NOT NULL,
	`limit` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`role_id`, `limit_name`),
	FOREIGN KEY (`role_id`) REFERENCES `roles`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `user_limits` (
	`user_id` text NOT NULL,
	`limit_name` text NOT NULL,
	`limit` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`user_id`, `limit_name`),
	FOREIGN KEY (`user_id`) REFERENCES `proxy_users`(`id`) ON UPDATE no action ON DELETE cascade
);
