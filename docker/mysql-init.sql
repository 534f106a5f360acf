-- Runs once when the mysql container initialises its data directory. The image has already
-- created the `coupons` database and account (MYSQL_DATABASE, MYSQL_USER); like scripts/stack,
-- let that account also create the per-test databases, which are all named coupons_test_*.
GRANT ALL PRIVILEGES ON `coupons%`.* TO 'coupons'@'%';
